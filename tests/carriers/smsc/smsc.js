// An SMSC for the SMPP connector's tests, on the npm `smpp` package (an implementation
// independent of the gateway's). It checks credentials, answers submit_sm with message ids,
// reassembles long messages (UDH, SAR, message_payload) with the package's own decoders, sends
// delivery receipts and MO messages (concatenated too), and redelivers every deliver_sm that was
// not answered with ESME_ROK once an ESME binds again.
//
// Usage: node smsc.js [--tls-key K --tls-cert C] [--system-id ID --password PW] [--id-prefix P]
// Prints one JSON line {"smpp": port, "control": port} once both listen on 127.0.0.1.
// Control: HTTP on the control port, JSON bodies:
//   GET  /state          what it saw: binds, submits (with times), reassembled messages, ...
//   POST /config         {submitStatus, throttleFirst, refuseBinds, responseDelayMs, silent,
//                         receipts: {stat, tlv, delayMs} | null}
//   POST /answer         answer the submit_sm held while silent (and stop being silent)
//   POST /drop           close every connection at once (no unbind)
//   POST /receipt        {messageId, stat, tlv, text, err}  one receipt deliver_sm
//   POST /mo             {from, to, text, coding: "gsm"|"ucs2", concat: "udh8"|"udh16"|"sar"|
//                         "payload"|null, partBytes}
//   POST /reset          forget what was seen (not the configuration)
'use strict';

const http = require('http');
const fs = require('fs');
const smpp = require('smpp');

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
}
const SYSTEM_ID = args['system-id'] || 'msgine';
const PASSWORD = args['password'] || 'secret';
const ID_PREFIX = args['id-prefix'] || '';

const config = {
  submitStatus: 0, // answer every submit_sm with this command status
  throttleFirst: 0, // answer the next N submit_sm with ESME_RTHROTTLED, then as configured
  refuseBinds: 0, // answer binds with this command status (0: check credentials)
  responseDelayMs: 0, // hold every submit_sm_resp this long
  silent: false, // never answer submit_sm (the ESME's outcome stays unknown)
  receipts: null, // {stat, tlv, delayMs}: a receipt for each accepted submit asking for one
};

let state;
function reset() {
  state = {
    binds: [], // {t, kind, systemId, ok, status}
    refusedBinds: 0,
    submits: [], // {t, messageId, status, source, sourceTon, sourceNpi, dest, destTon, destNpi,
    //              dataCoding, esmClass, registeredDelivery, session, inFlight}
    messages: [], // reassembled: {text, parts, mode, source, dest, dataCoding, messageIds}
    maxInFlight: 0, // most submit_sm of one session awaiting their response at once
    delivered: [], // deliver_sm answered ESME_ROK: {kind, messageId, t}
    deliverNacks: 0, // deliver_sm answered with an error (redelivered later)
    redeliveries: 0,
    enquireLinks: 0,
    unbinds: 0,
  };
}
reset();

let nextId = 1;
let nextSession = 1;
const partials = new Map(); // reassembly key -> {parts: Map(seq -> text), total, ...}
const sessions = new Set();
const outbox = []; // deliver_sm not yet answered ESME_ROK: {pdu fields, kind, messageId}
const held = []; // answers of submit_sm held back while silent, sent by POST /answer

function now() {
  return Date.now() / 1000;
}

function receiverSession() {
  for (const session of sessions) {
    if (session.bound && session.kind !== 'transmitter') return session;
  }
  return null;
}

function flushOutbox() {
  const session = receiverSession();
  if (!session) return;
  while (outbox.length) {
    const item = outbox.shift();
    if (item.sentBefore) state.redeliveries += 1;
    item.sentBefore = true;
    const ok = session.deliver_sm(Object.assign({}, item.fields), (resp) => {
      session.unanswered.delete(item);
      if (resp.command_status === 0) {
        state.delivered.push({ kind: item.kind, messageId: item.messageId, t: now() });
      } else {
        state.deliverNacks += 1;
        setTimeout(() => { outbox.push(item); flushOutbox(); }, 200);
      }
    });
    if (!ok) { outbox.unshift(item); return; }
    session.unanswered.add(item);
  }
}

function deliver(kind, fields, messageId) {
  outbox.push({ kind, fields, messageId, sentBefore: false });
  flushOutbox();
}

function receiptDate(date) {
  const p = (n) => String(n).padStart(2, '0');
  return p(date.getUTCFullYear() % 100) + p(date.getUTCMonth() + 1) + p(date.getUTCDate()) +
    p(date.getUTCHours()) + p(date.getUTCMinutes()) + p(date.getUTCSeconds());
}

const MESSAGE_STATE = {
  ENROUTE: 1, DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6, UNKNOWN: 7, REJECTD: 8,
};

function sendReceipt(opts) {
  const stamp = receiptDate(new Date());
  const err = opts.err || (opts.stat === 'DELIVRD' ? '000' : '001');
  const text = opts.text !== undefined ? opts.text :
    `id:${opts.messageId} sub:001 dlvrd:${opts.stat === 'DELIVRD' ? '001' : '000'} ` +
    `submit date:${stamp} done date:${stamp} stat:${opts.stat} err:${err} text:`;
  const fields = {
    source_addr: opts.source || '', source_addr_ton: 1, source_addr_npi: 1,
    destination_addr: opts.dest || '', esm_class: 0x04, data_coding: 0,
    short_message: Buffer.from(text, 'ascii'),
  };
  if (opts.tlv) {
    fields.receipted_message_id = opts.messageId;
    fields.message_state = MESSAGE_STATE[opts.stat];
  }
  deliver('receipt', fields, opts.messageId);
}

function encode(text, coding) {
  return coding === 'ucs2' ? smpp.encodings.UCS2.encode(text) : smpp.encodings.ASCII.encode(text);
}

function sendMo(opts) {
  const coding = opts.coding || 'gsm';
  const dataCoding = coding === 'ucs2' ? 8 : 0;
  const body = encode(opts.text, coding);
  const base = {
    source_addr: opts.from.replace(/^\+/, ''), source_addr_ton: 1, source_addr_npi: 1,
    destination_addr: (opts.to || '').replace(/^\+/, ''), dest_addr_ton: 1, dest_addr_npi: 1,
    esm_class: 0, data_coding: dataCoding,
  };
  if (!opts.concat) {
    deliver('mo', Object.assign({}, base, { short_message: body }), null);
    return;
  }
  if (opts.concat === 'payload') {
    deliver('mo', Object.assign({}, base, { message_payload: body }), null);
    return;
  }
  const size = opts.partBytes || (coding === 'ucs2' ? 134 : 153);
  const chunks = [];
  for (let at = 0; at < body.length; at += size) chunks.push(body.slice(at, at + size));
  const ref = Math.floor(Math.random() * 256);
  chunks.forEach((chunk, index) => {
    const fields = Object.assign({}, base);
    if (opts.concat === 'sar') {
      fields.short_message = chunk;
      fields.sar_msg_ref_num = ref;
      fields.sar_total_segments = chunks.length;
      fields.sar_segment_seqnum = index + 1;
    } else {
      const udh = opts.concat === 'udh16' ?
        Buffer.from([6, 8, 4, 0x12, ref, chunks.length, index + 1]) :
        Buffer.from([5, 0, 3, ref, chunks.length, index + 1]);
      fields.esm_class = 0x40;
      fields.short_message = Buffer.concat([udh, chunk]);
    }
    deliver('mo', fields, null);
  });
}

function concatOf(pdu) {
  const sm = pdu.short_message || {};
  if (sm.udh) {
    for (const ie of sm.udh) {
      if (ie[0] === 0x00) return { mode: 'udh', ref: ie[2], total: ie[3], seq: ie[4] };
      if (ie[0] === 0x08) return { mode: 'udh16', ref: ie.readUInt16BE(2), total: ie[4], seq: ie[5] };
    }
  }
  if (pdu.sar_msg_ref_num !== undefined) {
    return { mode: 'sar', ref: pdu.sar_msg_ref_num, total: pdu.sar_total_segments, seq: pdu.sar_segment_seqnum };
  }
  return null;
}

function textOf(pdu) {
  if (pdu.message_payload && pdu.message_payload.message !== undefined) {
    return { text: pdu.message_payload.message, mode: 'payload' };
  }
  const sm = pdu.short_message || {};
  return { text: sm.message === undefined ? '' : String(sm.message), mode: 'single' };
}

function collect(pdu, messageId) {
  const concat = concatOf(pdu);
  const { text, mode } = textOf(pdu);
  const common = {
    source: pdu.source_addr, dest: pdu.destination_addr, dataCoding: pdu.data_coding,
  };
  if (!concat) {
    state.messages.push(Object.assign({ text, parts: 1, mode, messageIds: [messageId] }, common));
    return;
  }
  const key = `${pdu.source_addr}|${pdu.destination_addr}|${concat.mode}|${concat.ref}|${concat.total}`;
  let partial = partials.get(key);
  if (!partial) {
    partial = { parts: new Map(), ids: new Map(), total: concat.total };
    partials.set(key, partial);
  }
  partial.parts.set(concat.seq, text);
  partial.ids.set(concat.seq, messageId);
  if (partial.parts.size === partial.total) {
    partials.delete(key);
    const order = [...partial.parts.keys()].sort((a, b) => a - b);
    state.messages.push(Object.assign({
      text: order.map((seq) => partial.parts.get(seq)).join(''),
      parts: partial.total, mode: concat.mode, messageIds: order.map((seq) => partial.ids.get(seq)),
    }, common));
  }
}

function onSubmit(session, pdu) {
  session.inFlight += 1;
  state.maxInFlight = Math.max(state.maxInFlight, session.inFlight);
  let status = config.submitStatus;
  if (config.throttleFirst > 0) {
    config.throttleFirst -= 1;
    status = smpp.ESME_RTHROTTLED;
  }
  const record = {
    t: now(), status, messageId: null, source: pdu.source_addr, sourceTon: pdu.source_addr_ton,
    sourceNpi: pdu.source_addr_npi, dest: pdu.destination_addr, destTon: pdu.dest_addr_ton,
    destNpi: pdu.dest_addr_npi, dataCoding: pdu.data_coding, esmClass: pdu.esm_class,
    registeredDelivery: pdu.registered_delivery, session: session.id, inFlight: session.inFlight,
  };
  state.submits.push(record);
  const answer = () => {
    session.inFlight -= 1;
    if (status !== 0) {
      session.send(pdu.response({ command_status: status }));
      return;
    }
    const messageId = ID_PREFIX + (nextId++).toString(16).padStart(8, '0');
    record.messageId = messageId;
    session.send(pdu.response({ message_id: messageId }));
    collect(pdu, messageId);
    if (config.receipts && (pdu.registered_delivery & 0x03)) {
      const receipt = config.receipts;
      setTimeout(() => sendReceipt({
        messageId, stat: receipt.stat || 'DELIVRD', tlv: !!receipt.tlv,
        source: pdu.destination_addr, dest: pdu.source_addr,
      }), receipt.delayMs || 0);
    }
  };
  if (config.silent) held.push(answer);
  else if (config.responseDelayMs > 0) setTimeout(answer, config.responseDelayMs);
  else answer();
}

function onBind(session, pdu, kind) {
  const entry = { t: now(), kind, systemId: pdu.system_id, ok: false, status: 0 };
  state.binds.push(entry);
  let status = config.refuseBinds;
  if (!status && (pdu.system_id !== SYSTEM_ID || pdu.password !== PASSWORD)) {
    status = pdu.system_id !== SYSTEM_ID ? smpp.ESME_RINVSYSID : smpp.ESME_RINVPASWD;
  }
  if (status) {
    state.refusedBinds += 1;
    entry.status = status;
    session.send(pdu.response({ command_status: status }));
    setTimeout(() => session.close(), 50);
    return;
  }
  entry.ok = true;
  session.kind = kind;
  session.bound = true;
  session.send(pdu.response({ system_id: 'TESTSMSC' }));
  setImmediate(flushOutbox);
}

function onSession(session) {
  // Each PDU is its own write: without this, Nagle holds a receipt behind the ACK of the
  // submit_sm_resp before it (the peer's delayed ACK then adds up to 40 ms per round).
  session.socket.setNoDelay(true);
  session.id = nextSession++;
  session.inFlight = 0;
  session.bound = false;
  session.unanswered = new Set();
  sessions.add(session);
  session.on('bind_transceiver', (pdu) => onBind(session, pdu, 'transceiver'));
  session.on('bind_transmitter', (pdu) => onBind(session, pdu, 'transmitter'));
  session.on('bind_receiver', (pdu) => onBind(session, pdu, 'receiver'));
  session.on('submit_sm', (pdu) => {
    if (!session.bound || session.kind === 'receiver') {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    onSubmit(session, pdu);
  });
  session.on('enquire_link', (pdu) => { state.enquireLinks += 1; session.send(pdu.response()); });
  session.on('unbind', (pdu) => {
    state.unbinds += 1;
    session.bound = false;
    session.send(pdu.response());
    setTimeout(() => session.close(), 20);
  });
  session.on('error', () => {});
  session.on('close', () => {
    sessions.delete(session);
    session.bound = false;
    // Every deliver_sm this session did not answer goes out again on the next bind.
    for (const item of session.unanswered) outbox.push(item);
    session.unanswered.clear();
    setImmediate(flushOutbox);
  });
}

const serverOptions = {};
if (args['tls-key']) {
  serverOptions.key = fs.readFileSync(args['tls-key']);
  serverOptions.cert = fs.readFileSync(args['tls-cert']);
}
const server = smpp.createServer(serverOptions, onSession);

function readJson(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; });
    req.on('end', () => resolve(data ? JSON.parse(data) : {}));
  });
}

const control = http.createServer(async (req, res) => {
  const body = await readJson(req);
  let reply = { ok: true };
  if (req.url === '/state') {
    reply = Object.assign({ bound: [...sessions].filter((s) => s.bound).length, pendingDeliveries: outbox.length }, state);
  } else if (req.url === '/config') {
    Object.assign(config, body);
  } else if (req.url === '/answer') {
    config.silent = false;
    held.splice(0).forEach((answer) => answer());
  } else if (req.url === '/drop') {
    for (const session of sessions) session.destroy();
  } else if (req.url === '/receipt') {
    sendReceipt(body);
  } else if (req.url === '/mo') {
    sendMo(body);
  } else if (req.url === '/reset') {
    reset();
  } else {
    res.writeHead(404);
    res.end();
    return;
  }
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(reply));
});

server.listen(0, '127.0.0.1', () => {
  control.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({
      smpp: server.address().port, control: control.address().port,
    }) + '\n');
  });
});
