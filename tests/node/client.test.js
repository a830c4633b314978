// client.test.js - the Node.js example client against the real engramd.
//
// Builds tables with $ENGRAM (from .npy files written here), starts $ENGRAMD
// on a temporary unix socket and a TCP port, and checks rows byte for byte
// against `engram table export` (rows read without the daemon). Token rows
// are checked against slots hashed here with BigInt (engram-v1, written from
// the spec text), so the daemon's hashing is checked too.
// Run by tests/run.sh: cd examples/node && node --test ../../tests/node/
'use strict';

const { test, before, after } = require('node:test');
const assert = require('node:assert');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { Client, EngramError } = require(path.join(__dirname, '..', '..', 'examples', 'node', 'engram.js'));

const ENGRAM = process.env.ENGRAM || 'build/engram';
const ENGRAMD = process.env.ENGRAMD || 'build/engramd';

// engram-v1 spec: 3-grams, 2 heads, small distinct primes.
const SPEC = {
  kind: 'engram-v1', max_ngram: 3, heads: 2, pad: 2,
  multipliers: [1000003, 2147483647, 998244353],
  moduli: [[101, 103], [107, 109]],
};
const SPEC_SLOTS = 101 + 103 + 107 + 109;

let dir, daemon, unixAddr, tcpAddr;
const tables = {};

function npy(descr, shape, data) {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const head = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(head, 0);
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), data]);
}

function npyData(file) {
  const b = fs.readFileSync(file);
  assert.strictEqual(b.toString('latin1', 1, 6), 'NUMPY');
  const hlen = b[6] === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (b[6] === 1 ? 10 : 12) + hlen;
  return b.subarray(start);
}

function engram(...args) {
  return execFileSync(ENGRAM, args.map(String), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function makeTable(name, descr, rows, dim, rowBytes, extra = []) {
  const data = crypto.randomBytes(rows * rowBytes);
  if (descr === '<f4') {  // finite floats, not random bit patterns
    for (let i = 0; i < rows * dim; i++) data.writeFloatLE(Math.sin(i) * 100, i * 4);
  }
  const src = path.join(dir, `${name}.npy`);
  fs.writeFileSync(src, npy(descr, [rows, dim], data));
  const tdir = path.join(dir, name);
  engram('table', 'import', tdir, '--from', src, '--name', name, ...extra);
  tables[name] = { dir: tdir, rows, rowBytes };
}

function exportRows(name, slots) {
  const sf = path.join(dir, `slots-${process.hrtime.bigint()}.npy`);
  const out = sf.replace('slots-', 'rows-');
  const data = Buffer.alloc(slots.length * 8);
  slots.forEach((s, i) => data.writeBigUInt64LE(BigInt(s), i * 8));
  fs.writeFileSync(sf, npy('<u8', [slots.length], data));
  engram('table', 'export', tables[name].dir, '--slots-file', sf, '--out', out);
  return npyData(out);
}

// Slots of every token of one sequence (engram-v1, no vocabulary map).
function engramV1Slots(spec, tokens) {
  const N = spec.max_ngram, H = spec.heads;
  const sizes = spec.moduli.flat().map(BigInt);
  const offsets = [];
  sizes.reduce((acc, s) => { offsets.push(acc); return acc + s; }, 0n);
  const mult = spec.multipliers.map(BigInt);
  const out = [];
  for (let t = 0; t < tokens.length; t++) {
    const x = (k) => BigInt(t - k >= 0 ? tokens[t - k] : spec.pad);
    let mix = BigInt.asIntN(64, x(0) * mult[0]);
    for (let n = 2; n <= N; n++) {
      mix = BigInt.asIntN(64, mix ^ BigInt.asIntN(64, x(n - 1) * mult[n - 1]));
      for (let h = 0; h < H; h++) {
        const i = (n - 2) * H + h;
        const m = ((mix % sizes[i]) + sizes[i]) % sizes[i];
        out.push(Number(offsets[i] + m));
      }
    }
  }
  return out;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

async function waitReady(addr, proc) {
  const deadline = Date.now() + 30000;
  for (;;) {
    try {
      const c = await Client.connect(addr, { timeout: 2000 });
      await c.ping();
      c.close();
      return;
    } catch (e) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`engramd did not start: ${e.message}`);
      await new Promise((r) => setTimeout(r, 30));
    }
  }
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'engram-node-'));
  makeTable('f32', '<f4', 3000, 8, 32, ['--chunk-slots', '512']);
  makeTable('bytes', '|u1', 1000, 24, 24, ['--chunk-slots', '256']);
  fs.writeFileSync(path.join(dir, 'spec.json'), JSON.stringify(SPEC));
  makeTable('hashed', '|u1', SPEC_SLOTS, 16, 16, ['--hash', path.join(dir, 'spec.json')]);
  unixAddr = `unix:${path.join(dir, 'engramd.sock')}`;
  tcpAddr = `tcp:127.0.0.1:${await freePort()}`;
  const args = ['--listen', unixAddr, '--listen', tcpAddr];
  for (const [name, t] of Object.entries(tables)) args.push('--table', `${name}=${t.dir}`);
  const log = fs.openSync(path.join(dir, 'engramd.log'), 'w');
  daemon = spawn(ENGRAMD, args, { stdio: ['ignore', log, log] });
  fs.closeSync(log);
  try {
    await waitReady(unixAddr, daemon);
  } catch (e) {
    e.message += '\n' + fs.readFileSync(path.join(dir, 'engramd.log'), 'utf8');
    throw e;
  }
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    const done = new Promise((r) => daemon.once('exit', r));
    daemon.kill('SIGTERM');
    await done;
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

test('info describes the tables', async () => {
  const c = await Client.connect(unixAddr);
  try {
    const info = Object.fromEntries((await c.info()).map((t) => [t.name, t]));
    assert.deepStrictEqual(Object.keys(info).sort(), ['bytes', 'f32', 'hashed']);
    assert.strictEqual(info.f32.slots, 3000);
    assert.strictEqual(info.f32.dim, 8);
    assert.strictEqual(info.f32.dtype, 'f32');
    assert.strictEqual(info.f32.row_bytes, 32);
    assert.strictEqual(info.hashed.hash_kind, 'engram-v1');
    assert.strictEqual(info.hashed.rows_per_token, 4);
    assert.strictEqual((await c.ping()).protocol_version, 1);
  } finally {
    c.close();
  }
});

for (const [label, addrOf] of [['unix', () => unixAddr], ['tcp', () => tcpAddr]]) {
  test(`lookup rows are byte-exact over ${label}`, async () => {
    const c = await Client.connect(addrOf());
    try {
      for (const name of ['f32', 'bytes']) {
        const n = tables[name].rows;
        const slots = [0, n - 1, 0, ...Array.from({ length: 500 }, (_, i) => (i * 7919) % n)];
        const r = await c.lookup(name, slots);
        assert.strictEqual(r.count, slots.length);
        assert.strictEqual(r.rowBytes, tables[name].rowBytes);
        assert.strictEqual(r.generation, 1);
        assert.ok(r.data.equals(exportRows(name, slots)), `${name} rows differ from the export`);
        // engramd's answers say reads_fixed_slots: from the first one on, the
        // client sends the slots as words (fixed_slots), with the same rows
        assert.ok(c.fixedSlots, 'the answer did not say reads_fixed_slots');
      }
    } finally {
      c.close();
    }
  });
}

test('token lookup returns the rows of the hashed n-grams', async () => {
  const c = await Client.connect(tcpAddr);
  try {
    const tokens = [5, 17, 9, 123456, 0, 42, 42, 7];
    const r = await c.tokens(['hashed'], tokens);
    assert.strictEqual(r.tokens, tokens.length);
    assert.strictEqual(r.rowsPerToken, 4);
    const want = exportRows('hashed', engramV1Slots(SPEC, tokens));
    assert.ok(r.blocks[0].data.equals(want), 'token rows differ from the export of the hashed slots');
    // two sequences: the second starts over with pad history
    const two = await c.tokens('hashed', tokens, { seqLens: [3, 5] });
    const want2 = exportRows('hashed', [...engramV1Slots(SPEC, tokens.slice(0, 3)),
                                        ...engramV1Slots(SPEC, tokens.slice(3))]);
    assert.ok(two.blocks[0].data.equals(want2));
  } finally {
    c.close();
  }
});

test('pipelined requests and errors', async () => {
  const c = await Client.connect(unixAddr);
  try {
    const ps = [];
    for (let i = 0; i < 50; i++) ps.push(c.lookup('f32', [i, i + 1]));
    const bad = c.lookup('nope', [1]);
    const range = c.lookup('f32', [3000]);
    const last = c.lookup('bytes', [9]);
    const rows = await Promise.all(ps);
    const all = exportRows('f32', Array.from({ length: 51 }, (_, i) => i));
    rows.forEach((r, i) => assert.ok(r.data.equals(all.subarray(i * 32, (i + 2) * 32))));
    await assert.rejects(bad, (e) => e instanceof EngramError && e.statusName === 'NOT_FOUND');
    await assert.rejects(range, (e) => e.statusName === 'OUT_OF_RANGE' && /3000/.test(e.message));
    assert.ok((await last).data.equals(exportRows('bytes', [9])));
  } finally {
    c.close();
  }
});

test('connect errors are reported', async () => {
  await assert.rejects(Client.connect(`unix:${path.join(dir, 'none.sock')}`),
                       (e) => e instanceof EngramError && e.status === null);
  assert.throws(() => Client.connect('http://x'), /not unix:PATH or tcp:HOST:PORT/);
});

test('no address means the installed service socket', async () => {
  const { DEFAULT_ADDRESS } = require(path.join(__dirname, '..', '..', 'examples', 'node', 'engram.js'));
  assert.strictEqual(DEFAULT_ADDRESS, 'unix:/run/engramd/engramd.sock');
  let c;
  try {
    c = await Client.connect(undefined, { timeout: 2000 }); // a service of this host answers
    assert.strictEqual(c.addr, DEFAULT_ADDRESS);
    c.close();
  } catch (e) {
    assert.ok(e instanceof EngramError && e.message.includes(DEFAULT_ADDRESS), e.message);
  }
});
