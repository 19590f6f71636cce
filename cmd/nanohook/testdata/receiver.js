// A webhook receiver written the way the original nanohook documentation
// tells customers to write one: parse the JSON body, then verify the
// signature over JSON.stringify(payload). It also checks the raw body, the
// way careful receivers do, and reports both verdicts, one JSON line per
// delivery on stdout, for the Go test that drives it.
//
// Usage: node receiver.js <secret>   (prints {"port": N} first)
const http = require('http');
const crypto = require('crypto');

// verifySignature as shown in the original documentation (unchanged).
function verifySignature(payload, signature, timestamp, secret) {
  const message = `${timestamp}.${JSON.stringify(payload)}`;
  const expectedSignature = crypto
    .createHmac('sha256', secret)
    .update(message)
    .digest('hex');
  return signature === `v1=${expectedSignature}`;
}

const secret = process.argv[2];

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks);
    const signature = req.headers['x-nano-signature'];
    const timestamp = req.headers['x-nano-timestamp'];
    let payload = null;
    let parseError = null;
    try {
      payload = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      parseError = String(e);
    }
    const docOK = payload !== null && verifySignature(payload, signature, timestamp, secret);
    const rawExpected = 'v1=' + crypto.createHmac('sha256', secret)
      .update(Buffer.concat([Buffer.from(`${timestamp}.`), raw])).digest('hex');
    const rawOK = signature === rawExpected;
    const roundTrip = payload !== null && JSON.stringify(payload) === raw.toString('utf8');
    process.stdout.write(JSON.stringify({
      path: req.url,
      event_id: req.headers['x-nano-event-id'],
      attempt: req.headers['x-nano-delivery-attempt'],
      doc_verified: docOK,
      raw_verified: rawOK,
      round_trip: roundTrip,
      parse_error: parseError,
      body_b64: raw.toString('base64'),
    }) + '\n');
    res.writeHead(docOK && rawOK ? 200 : 401, { 'Content-Type': 'text/plain' });
    res.end(docOK && rawOK ? 'ok' : 'bad signature');
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
process.stdin.on('end', () => process.exit(0)); // the test closes stdin to stop us
process.stdin.resume();
