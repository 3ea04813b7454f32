// The Node.js peer of `examples/http.rs`, for `benches/http_load.rs`.
//
// `node benches/peers/http.js [ADDR]` (ADDR defaults to 127.0.0.1:8080; port 0 picks a free
// port; a bare port number means 127.0.0.1:PORT). Prints `listening on IP:PORT` once it is
// ready and exits with status 0 on SIGINT or SIGTERM, like the Rust example.
//
// Plain `http.createServer`, no framework: `GET /plaintext` and `GET /` answer `Hello, World!`
// as text/plain, `GET /json` answers `{"message":"Hello, World!"}`, any other path is a 404.
// Node handles keep-alive and pipelining itself (pipelined requests are answered in order).
//
// Two settings differ from the defaults, both so that the bench measures the same thing on
// every server: `noDelay: true` (Nagle off on accepted sockets, as reactor's listeners do; it
// is Node's default since 18 anyway), and `keepAliveTimeout` 60 s instead of 5 s, so that the
// 10,000 idle connections of the memory figure stay open however long they take to open. The
// bench gives the reactor example the same 60 s (`--idle-timeout 60000`); both still arm a
// timer per idle connection, as they would in production.
'use strict';

const http = require('http');

const arg = process.argv[2] || '127.0.0.1:8080';
const colon = arg.lastIndexOf(':');
const host = colon < 0 ? '127.0.0.1' : arg.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
const portText = arg.slice(colon + 1);
const port = Number(portText);
if (host === '' || portText === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`http.js: ${JSON.stringify(arg)} is not an address like 127.0.0.1:8080\n`);
  process.exit(2);
}

const PLAINTEXT = Buffer.from('Hello, World!');

const server = http.createServer({ noDelay: true }, (req, res) => {
  if (req.method !== 'GET') {
    res.writeHead(405, { 'Content-Type': 'text/plain', 'Content-Length': 18 });
    res.end('Method Not Allowed');
  } else if (req.url === '/plaintext' || req.url === '/') {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': PLAINTEXT.length });
    res.end(PLAINTEXT);
  } else if (req.url === '/json') {
    const body = JSON.stringify({ message: 'Hello, World!' });
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
  } else {
    res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 9 });
    res.end('Not Found');
  }
});
server.keepAliveTimeout = 60_000;

// A client that resets its connection must not take the server down.
server.on('clientError', (err, socket) => socket.destroy());
server.on('error', (err) => {
  process.stderr.write(`http.js: ${arg}: ${err.message}\n`);
  process.exit(1);
});

server.listen({ host, port, backlog: 1024 }, () => {
  const { address, port: bound } = server.address();
  const shown = address.includes(':') ? `[${address}]` : address;
  process.stdout.write(`listening on ${shown}:${bound}\n`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
