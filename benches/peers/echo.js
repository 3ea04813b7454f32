// The Node.js peer of `examples/echo.rs`, for `benches/echo_load.rs`.
//
// `node benches/peers/echo.js [ADDR]` (ADDR defaults to 127.0.0.1:7000; port 0 picks a free
// port). Prints `listening on IP:PORT` once it is ready and exits with status 0 on SIGINT or
// SIGTERM, like the Rust example.
//
// The protocol is `socket.pipe(socket)`, backpressure included. Accepted sockets start with
// Nagle's algorithm off (`noDelay: true`), as reactor's listeners do by default, so that both
// servers put the same segments on the wire.
'use strict';

const net = require('net');

const arg = process.argv[2] || '127.0.0.1:7000';
const colon = arg.lastIndexOf(':');
const host = arg.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
const port = Number(arg.slice(colon + 1));
if (colon < 0 || host === '' || !Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`echo.js: ${JSON.stringify(arg)} is not an address like 127.0.0.1:7000\n`);
  process.exit(2);
}

const server = net.createServer({ noDelay: true }, (socket) => {
  // A client that resets its connection must not take the server down.
  socket.on('error', () => socket.destroy());
  socket.pipe(socket);
});

server.on('error', (err) => {
  process.stderr.write(`echo.js: ${arg}: ${err.message}\n`);
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
