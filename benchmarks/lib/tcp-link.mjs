// Raw TCP over the shaped link, to measure what the link itself delivers (no SSH, no disk):
//   node tcp-link.mjs sink HOST PORT        accept connections, discard their bytes, close
//   node tcp-link.mjs send HOST PORT FILE   stream FILE, wait until the sink has read it all
// Prints "bytesOnWire N" when sending.
import { createReadStream } from 'node:fs';
import { connect, createServer } from 'node:net';

const [role, host, port, file] = process.argv.slice(2);
if (role === 'sink') {
  createServer((socket) => {
    socket.on('data', () => {});
    socket.on('end', () => socket.end());
    socket.on('error', () => socket.destroy());
  }).listen(Number(port), host, () => console.log('listening'));
} else if (role === 'send') {
  let bytes = 0;
  const socket = connect(Number(port), host, () => {
    const input = createReadStream(file, { highWaterMark: 4 << 20 });
    input.on('data', (d) => (bytes += d.length));
    input.pipe(socket);
  });
  socket.on('data', () => {});
  socket.on('close', (hadError) => {
    console.log(`bytesOnWire ${bytes}`);
    process.exitCode = hadError ? 1 : 0;
  });
} else {
  console.error('usage: tcp-link.mjs sink HOST PORT | send HOST PORT FILE');
  process.exitCode = 2;
}
