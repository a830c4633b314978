// lying_server.test.js - the Node.js example client against a server that lies.
//
// A fake engramd in this process (a real unix socket, the real framing,
// answers encoded with protobufjs from proto/engram.proto) answers each
// lookup, token lookup or ping with the lie of the case: no row block, one
// row for four slots, another table's block, a layout that cannot be, a
// frame of 2^40 bytes, ... The client must reject with a ProtocolError
// naming the mismatch, at once; a truthful case shows the fake server is
// believed when it tells the truth.
// Run by tests/run.sh: cd examples/node && node --test ../../tests/node/
'use strict';

const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { Client, ProtocolError, Request, Response } =
  require(path.join(__dirname, '..', '..', 'examples', 'node', 'engram.js'));

const ROW = 16, ROW_H = 8, RPT = 4;

function varint(n) {
  const out = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Buffer.from(out);
}

function frame(obj) {
  return Buffer.from(Response.encodeDelimited(Response.fromObject(obj)).finish());
}

function rowsOf(slots) {
  return Buffer.concat(slots.map((s) => Buffer.from(Array.from({ length: ROW }, (_, j) => (s * 31 + j + 1) & 0xff))));
}

// The answer to req under lie: a Buffer to send.
function answer(req, lie) {
  const id = Number(req.id);
  if (req.ping) {
    return frame(lie === 'wrong_body' ? { id, stats: {} } : { id, pong: { protocol_version: 1 } });
  }
  if (lie === 'huge_frame') return Buffer.concat([varint(2 ** 40), Buffer.from([0x08, id])]);
  if (req.lookup) {
    const slots = req.lookup.slots.map(Number);
    const b = { table: req.lookup.table, generation: 1, row_bytes: ROW, count: slots.length, data: rowsOf(slots) };
    let blocks = [b];
    if (lie === 'no_block') blocks = [];
    else if (lie === 'short_count') Object.assign(b, { count: 1, data: rowsOf(slots.slice(0, 1)) });
    else if (lie === 'wrong_table') b.table = 'b';
    else if (lie === 'short_data') b.data = b.data.subarray(0, 2 * ROW);
    else if (lie === 'huge_row') Object.assign(b, { row_bytes: 2 ** 32 - 1, data: Buffer.alloc(0) });
    return frame({ id, blocks });
  }
  const tr = req.tokens;
  let ntok = tr.tokens.length - tr.context.reduce((a, c) => a + c, 0);
  const blocks = tr.tables.map((t, i) => ({ table: t, generation: 1, row_bytes: ROW_H, count: ntok * RPT,
                                            data: Buffer.alloc(ntok * RPT * ROW_H, i + 1) }));
  if (lie === 'no_block') blocks.pop();
  else if (lie === 'tokens_count') ntok -= 1;
  else if (lie === 'block_count') Object.assign(blocks[1], { count: blocks[1].count + 1,
                                                            data: Buffer.alloc((ntok * RPT + 1) * ROW_H) });
  else if (lie === 'swapped') [blocks[0].table, blocks[1].table] = [blocks[1].table, blocks[0].table];
  return frame({ id, tokens: ntok, rows_per_token: RPT, blocks });
}

// A fake engramd telling lie; resolves to {addr, close}.
function liar(lie) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'engram-liar-'));
  const sock = path.join(dir, 'liar.sock');
  const conns = new Set();
  const server = net.createServer((c) => {
    conns.add(c);
    let buf = Buffer.alloc(0);
    c.on('error', () => {});
    c.on('close', () => conns.delete(c));
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        let len = 0, mul = 1, pos = 0;
        while (pos < buf.length && buf[pos] & 0x80) { len += (buf[pos++] & 0x7f) * mul; mul *= 128; }
        if (pos >= buf.length) return;
        len += buf[pos++] * mul;
        if (buf.length < pos + len) return;
        const req = Request.toObject(Request.decode(buf.subarray(pos, pos + len)), { longs: Number, defaults: true });
        buf = buf.subarray(pos + len);
        c.write(answer(req, lie));
      }
    });
  });
  return new Promise((resolve) => server.listen(sock, () => resolve({
    addr: `unix:${sock}`,
    close: () => new Promise((r) => {
      for (const c of conns) c.destroy();
      server.close(() => { fs.rmSync(dir, { recursive: true, force: true }); r(); });
    }),
  })));
}

const lookup = (c) => c.lookup('a', [3, 1, 4, 1]);
const tokens = (c) => c.tokens(['h', 'h2'], [5, 9, 2, 7], { seqLens: [2, 2], context: [1, 0] });

const CASES = [
  ['no row block', lookup, 'no_block', /0 row blocks for 1 table asked/],
  ['one row for four slots', lookup, 'short_count', /holds 1 rows; the request asked for 4/],
  ['another table', lookup, 'wrong_table', /block 0 is for table 'b'; the request asked for 'a'/],
  ['short data', lookup, 'short_data', /32 bytes of data for 4 rows of 16 bytes/],
  ['a row of 2^32-1 bytes', lookup, 'huge_row', /row_bytes 4294967295 is not a real row size/],
  ['a frame of 2^40 bytes', lookup, 'huge_frame', /announced a response of 1099511627776 bytes/],
  ['tokens: a block missing', tokens, 'no_block', /1 row blocks for 2 tables asked/],
  ['tokens: a token missing', tokens, 'tokens_count', /returned 2 tokens; the request returns 3/],
  ['tokens: 13 rows for 3 tokens', tokens, 'block_count', /holds 13 rows; the request asked for 3 tokens times/],
  ['tokens: blocks swapped', tokens, 'swapped', /block 0 is for table 'h2'; the request asked for 'h'/],
  ['ping answered with stats', (c) => c.ping(), 'wrong_body', /wrong kind of response/],
];

for (const [name, run, lie, says] of CASES) {
  test(`refused: ${name}`, async () => {
    const l = await liar(lie);
    const c = await Client.connect(l.addr, { timeout: 5000 });
    const t0 = Date.now();
    try {
      await assert.rejects(run(c), (e) => e instanceof ProtocolError && says.test(e.message));
      assert.ok(Date.now() - t0 < 3000, 'refused at once, not waited out');
    } finally {
      c.close();
      await l.close();
    }
  });
}

test('the truth is believed', async () => {
  const l = await liar('truth');
  const c = await Client.connect(l.addr, { timeout: 5000 });
  try {
    const r = await lookup(c);
    assert.strictEqual(r.count, 4);
    assert.ok(r.data.equals(rowsOf([3, 1, 4, 1])));
    const t = await tokens(c);
    assert.strictEqual(t.tokens, 3);
    assert.strictEqual(t.blocks[1].count, 3 * RPT);
    assert.strictEqual(t.blocks[1].data[0], 2);
    assert.strictEqual((await c.ping()).protocol_version, 1);
  } finally {
    c.close();
    await l.close();
  }
});
