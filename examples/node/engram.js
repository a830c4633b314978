#!/usr/bin/env node
// engram.js - a small Node.js client of engramd.
//
// All another language needs is proto/engram.proto (loaded here at runtime
// with protobufjs) and the framing: every message on the stream is preceded
// by its length as a protobuf varint. Requests may be pipelined: responses
// come back in request order on each connection, each echoing its request id.
//
//   const { Client } = require('./engram');
//   const c = await Client.connect(DEFAULT_ADDRESS, { timeout: 5000 }); // or 'tcp:host:port'
//   const info = await c.info();                      // [{name, slots, dim, ...}]
//   const r = await c.lookup('layer1', [0, 17, 42]);  // {data: Buffer, rowBytes, count, generation}
//   const t = await c.tokens(['layer1'], [5, 9, 2]);  // {tokens, rowsPerToken, blocks: [...]}
//   c.close();
//
// Rows come back as the table's stored bytes (see docs of the table format);
// decoding them is left to the caller. Nothing in an answer is believed
// before it is checked against the request (one block per table asked, in
// order and named as asked, the rows asked, count x rowBytes bytes, a real
// row size; a frame no longer than a true answer can be): a mismatch fails
// the call with a ProtocolError (a frame that cannot be read or is too long
// drops the connection, failing every call waiting on it).
//
// As a program:  node engram.js ADDR info | lookup TABLE SLOT,... | tokens TABLE[,TABLE] ID,...
'use strict';

const net = require('net');
const path = require('path');
const protobuf = require('protobufjs');

const PROTO = path.join(__dirname, '..', '..', 'proto', 'engram.proto');
const root = new protobuf.Root().loadSync(PROTO, { keepCase: true });
const Request = root.lookupType('engram.v1.Request');
const Response = root.lookupType('engram.v1.Response');
const Status = root.lookupEnum('engram.v1.Status');

// Numbers for 64-bit fields (safe below 2^53, plenty for slot counts).
const TO_OBJECT = { longs: Number, enums: Number, defaults: true, oneofs: true };

// What no table engramd serves can exceed (libengram's limits, engram.h).
const ROW_BYTES_MAX = 16 * 1024 * 1024;
const ROWS_PER_TOKEN_MAX = 15 * 256;
const MSG_FRAME_MAX = 64 * 1024 * 1024;      // info, reload
const SMALL_FRAME_MAX = 64 * 1024;           // stats, ping
const FRAME_SLACK = 64 * 1024;               // top-level fields and an error text
const BLOCK_SLACK = 128;                     // a block's header besides its name

class EngramError extends Error {
  constructor(status, message) {
    super(status === null ? message : `${Status.valuesById[status] || status}: ${message}`);
    this.name = 'EngramError';
    this.status = status;             // the daemon's Status, or null for a client-side error
    this.statusName = status === null ? null : Status.valuesById[status];
    this.detail = message;
  }
}

// An answer that is unparseable or does not match its request.
class ProtocolError extends EngramError {
  constructor(message) {
    super(null, message);
    this.name = 'ProtocolError';
  }
}

// Tokens that return rows, or null when seqLens/context do not add up.
function tokensOut(ntokens, seqLens, context) {
  const lens = seqLens.length ? seqLens.map(Number) : [ntokens];
  const ctx = context.length ? context.map(Number) : lens.map(() => 0);
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  if (sum(lens) !== ntokens || ctx.length !== lens.length || ctx.some((c, i) => c > lens[i])) return null;
  return ntokens - sum(ctx);
}

// Holds the blocks of r to a request for rows of tables: wants[i] rows of
// table i (null: any multiple of tokens, 1..ROWS_PER_TOKEN_MAX per token).
function checkBlocks(r, tables, wants, tokens) {
  if (r.blocks.length !== tables.length) {
    throw new ProtocolError(`daemon sent ${r.blocks.length} row blocks for ${tables.length} ` +
                            `table${tables.length === 1 ? '' : 's'} asked`);
  }
  r.blocks.forEach((b, i) => {
    const name = `block ${i} (table '${tables[i]}')`;
    if (b.table !== tables[i]) {
      throw new ProtocolError(`block ${i} is for table '${b.table}'; the request asked for '${tables[i]}'`);
    }
    if (!(b.row_bytes >= 1 && b.row_bytes <= ROW_BYTES_MAX)) {
      throw new ProtocolError(`${name}: row_bytes ${b.row_bytes} is not a real row size (1..${ROW_BYTES_MAX})`);
    }
    const want = wants[i];
    const per = tokens ? b.count / tokens : 0;
    if (want === null ? !(tokens ? Number.isInteger(per) && per >= 1 && per <= ROWS_PER_TOKEN_MAX
                                 : b.count === 0)
                      : b.count !== want) {
      throw new ProtocolError(`${name} holds ${b.count} rows; the request asked for ` +
                              `${want === null ? `${tokens} tokens times 1..${ROWS_PER_TOKEN_MAX}` : want}`);
    }
    if (b.shm) throw new ProtocolError(`${name} says its rows are in a shared buffer; none was asked for`);
    if (b.data.length !== b.count * b.row_bytes) {
      throw new ProtocolError(`${name} has ${b.data.length} bytes of data for ${b.count} rows of ${b.row_bytes} bytes`);
    }
  });
}

// The socket of the daemon installed as a service (engramd.socket): what
// connect() uses when given no address.
const DEFAULT_ADDRESS = 'unix:/run/engramd/engramd.sock';

function parseAddress(addr) {
  if (addr.startsWith('unix:') && addr.length > 5) return { path: addr.slice(5) };
  const m = /^tcp:(.+):(\d+)$/.exec(addr);
  if (m) return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port: Number(m[2]) };
  throw new Error(`address '${addr}' is not unix:PATH or tcp:HOST:PORT`);
}

// Reads the varint at buf[pos]; returns [value, next pos] or null if incomplete.
function readVarint(buf, pos) {
  let value = 0, mul = 1;
  for (let i = 0; i < 10 && pos < buf.length; i++) {
    const b = buf[pos++];
    value += (b & 0x7f) * mul;
    if (!(b & 0x80)) return [value, pos];
    mul *= 128;
  }
  if (pos >= buf.length) return null;
  throw new EngramError(null, 'malformed frame length from the daemon');
}

class Client {
  constructor(sock, addr, timeout) {
    this.sock = sock;
    this.addr = addr;
    this.timeout = timeout;
    this.nextId = 1;
    this.pending = [];           // {id, resolve, reject, timer} in request order
    this.chunks = [];
    this.buffered = 0;
    this.need = 0;               // bytes the next frame needs, once known
    this.closed = false;
    this.fixedSlots = false;     // an answer said reads_fixed_slots: slots go as words
    sock.on('data', (d) => this._onData(d));
    sock.on('error', (e) => this._fail(new EngramError(null, `${addr}: ${e.message}`)));
    sock.on('close', () => this._fail(new EngramError(null, `${addr} closed the connection`)));
  }

  // Connects to addr ("unix:/path" or "tcp:host:port"; null, undefined or ''
  // for DEFAULT_ADDRESS); timeout in ms bounds the connect and every request
  // (0 = none).
  static connect(addr, { timeout = 10000 } = {}) {
    addr = addr || DEFAULT_ADDRESS;
    const opts = parseAddress(addr);
    return new Promise((resolve, reject) => {
      const sock = net.createConnection(opts);
      let timer = null;
      if (timeout) {
        timer = setTimeout(() => {
          sock.destroy();
          reject(new EngramError(null, `connecting to ${addr}: timed out`));
        }, timeout);
      }
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        if (sock.setNoDelay) sock.setNoDelay(true);
        resolve(new Client(sock, addr, timeout));
      });
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(new EngramError(null, `connecting to ${addr}: ${e.message}`));
      });
    });
  }

  close() {
    this.closed = true;
    this.sock.end();
    this._fail(new EngramError(null, 'client closed'));
  }

  info() {
    return this._call({ info: {} }, MSG_FRAME_MAX, 'info').then((r) => r.info.tables);
  }

  stats() {
    return this._call({ stats: {} }, SMALL_FRAME_MAX, 'stats').then((r) => r.stats);
  }

  ping() {
    return this._call({ ping: {} }, SMALL_FRAME_MAX, 'pong').then((r) => r.pong);
  }

  reload(table = '') {
    return this._call({ reload: { table } }, MSG_FRAME_MAX, 'reload').then((r) => r.reload.results);
  }

  // Rows of slots: {data: Buffer (count * rowBytes), rowBytes, count, generation}.
  lookup(table, slots) {
    slots = Array.from(slots);
    const maxFrame = FRAME_SLACK + BLOCK_SLACK + Buffer.byteLength(table) + slots.length * ROW_BYTES_MAX;
    const req = this.fixedSlots ? { table, fixed_slots: slots } : { table, slots };
    return this._call({ lookup: req }, maxFrame).then((r) => {
      checkBlocks(r, [table], [slots.length], 0);
      return block(r.blocks[0]);
    });
  }

  // Token lookup over tables: {tokens, rowsPerToken, blocks: [{table, data,
  // rowBytes, count, generation}]}, block i = [tokens x rows x rowBytes].
  tokens(tables, tokenIds, { seqLens = [], context = [] } = {}) {
    tables = [].concat(tables);
    const req = { tables, tokens: Array.from(tokenIds), seq_lens: seqLens, context };
    const ntok = tokensOut(req.tokens.length, seqLens, context);
    const maxFrame = tables.reduce((m, t) => m + BLOCK_SLACK + Buffer.byteLength(t) +
                                   (ntok || 0) * ROWS_PER_TOKEN_MAX * ROW_BYTES_MAX, FRAME_SLACK);
    return this._call({ tokens: req }, maxFrame).then((r) => {
      if (ntok === null) throw new ProtocolError('daemon accepted a token request whose seq_lens and context do not add up');
      if (r.tokens !== ntok) throw new ProtocolError(`daemon returned ${r.tokens} tokens; the request returns ${ntok}`);
      if (!(r.rows_per_token >= 1 && r.rows_per_token <= ROWS_PER_TOKEN_MAX)) {
        throw new ProtocolError(`daemon says ${r.rows_per_token} rows per token (1..${ROWS_PER_TOKEN_MAX} are real)`);
      }
      checkBlocks(r, tables, tables.map((_, i) => (i === 0 ? ntok * r.rows_per_token : null)), ntok);
      return { tokens: r.tokens, rowsPerToken: r.rows_per_token, blocks: r.blocks.map(block) };
    });
  }

  // Sends body; resolves with the Response (status OK, a frame of at most
  // maxFrame bytes, and the body field `want` when given).
  _call(body, maxFrame, want = null) {
    if (this.closed) return Promise.reject(new EngramError(null, 'client closed'));
    const id = this.nextId++;
    const msg = Request.fromObject({ id, ...body });
    const frame = Request.encodeDelimited(msg).finish();
    return new Promise((resolve, reject) => {
      const p = { id, resolve, reject, timer: null, maxFrame, want };
      if (this.timeout) {
        p.timer = setTimeout(() => {
          // a half-read stream cannot be resumed: drop the connection
          this.sock.destroy();
          this._fail(new EngramError(null, `timed out waiting for ${this.addr}`));
        }, this.timeout);
      }
      this.pending.push(p);
      this.sock.write(frame);
    });
  }

  _onData(chunk) {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    // Join chunks only once a whole frame is in: a big response arrives in
    // many chunks, and joining at every one would copy it over and over.
    if (this.buffered < this.need) return;
    let buf = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.buffered);
    let pos = 0;
    this.need = 0;
    try {
      for (;;) {
        const v = readVarint(buf, pos);
        if (v === null) break;
        const [len, start] = v;
        const head = this.pending[0];
        if (head && len > head.maxFrame) {
          throw new ProtocolError(`daemon announced a response of ${len} bytes to request ${head.id}; ` +
                                  `a true answer has at most ${head.maxFrame}`);
        }
        if (start + len > buf.length) {
          this.need = start + len - pos;
          break;
        }
        this._onFrame(buf.subarray(start, start + len));
        pos = start + len;
      }
    } catch (e) {
      this.sock.destroy();
      this._fail(e instanceof EngramError ? e : new EngramError(null, `bad response: ${e.message}`));
      return;
    }
    buf = buf.subarray(pos);
    this.chunks = buf.length ? [buf] : [];
    this.buffered = buf.length;
  }

  _onFrame(frame) {
    const r = Response.toObject(Response.decode(frame), TO_OBJECT);
    const p = this.pending.shift();
    if (!p) throw new EngramError(null, `unexpected response id ${r.id}`);
    clearTimeout(p.timer);
    if (r.reads_fixed_slots) this.fixedSlots = true; // later lookups: no varint per slot
    if (r.id !== p.id && !(r.id === 0 && r.status !== 0)) {
      p.reject(new EngramError(null, `response id ${r.id} does not match request ${p.id}`));
      throw new EngramError(null, 'responses out of step');
    }
    if (r.status !== 0) p.reject(new EngramError(r.status, r.error));
    else if (p.want && r.body !== p.want) p.reject(new ProtocolError('daemon answered with the wrong kind of response'));
    else p.resolve(r);
  }

  _fail(err) {
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
  }
}

function block(b) {
  return { table: b.table, data: b.data, rowBytes: b.row_bytes, count: b.count, generation: b.generation };
}

async function main(argv) {
  const [addr, cmd, a, b] = argv;
  const ints = (s) => (s || '').split(',').filter((x) => x !== '').map(Number);
  if (!addr || !cmd) {
    console.error('usage: engram.js ADDR info | lookup TABLE SLOT,... | tokens TABLE[,TABLE] ID,...');
    return 2;
  }
  const c = await Client.connect(addr);
  try {
    if (cmd === 'info') {
      for (const t of await c.info()) {
        console.log(`${t.name}: ${t.slots} slots x ${t.dim} ${t.dtype} (${t.row_bytes} bytes), ` +
                    `generation ${t.generation}, hash ${t.hash_kind || 'none'}`);
      }
    } else if (cmd === 'lookup') {
      const r = await c.lookup(a, ints(b));
      for (let i = 0; i < r.count; i++) {
        console.log(r.data.subarray(i * r.rowBytes, (i + 1) * r.rowBytes).toString('hex'));
      }
    } else if (cmd === 'tokens') {
      const r = await c.tokens(a.split(','), ints(b));
      for (const blk of r.blocks) {
        console.log(`${blk.table}: ${r.tokens} tokens x ${r.rowsPerToken} rows x ${blk.rowBytes} bytes, ` +
                    `generation ${blk.generation}`);
      }
    } else {
      console.error(`engram.js: unknown command '${cmd}'`);
      return 2;
    }
  } finally {
    c.close();
  }
  return 0;
}

module.exports = { Client, DEFAULT_ADDRESS, EngramError, ProtocolError, parseAddress, Request, Response, Status };

if (require.main === module) {
  main(process.argv.slice(2)).then((rc) => { process.exitCode = rc; }, (e) => {
    console.error(`engram.js: ${e.message}`);
    process.exitCode = 1;
  });
}
