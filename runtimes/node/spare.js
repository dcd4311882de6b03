// A spare worker's boot (orvad/services/spares.py): started before its function is known. It waits for one
// `environment` frame on stdin (runtimes/PROTOCOL.md), sets those variables, and then loads the adapter as a
// usual worker does. orvad sends that frame only once the function's code is in /code and its limits are on
// the jail's cgroups.
'use strict';
const fs = require('fs');

function read(size) {
  const buffer = Buffer.alloc(size);
  let got = 0;
  while (got < size) {
    const n = fs.readSync(0, buffer, got, size - got, null);
    if (n === 0) process.exit(0);  // orvad stopped the spare before handing it a function
    got += n;
  }
  return buffer;
}

const waiting = Buffer.from('{"type":"spare"}');
const header = Buffer.alloc(4);
header.writeUInt32BE(waiting.length, 0);
fs.writeSync(1, Buffer.concat([header, waiting]));
const message = JSON.parse(read(read(4).readUInt32BE(0)).toString('utf8'));
if (message.type !== 'environment') process.exit(70);
Object.assign(process.env, message.env);
process.argv[1] = require('path').join(__dirname, 'adapter.js');  // as a usual worker's
require('./adapter.js');
