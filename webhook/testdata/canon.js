// canon.js: the reference the webhook tests compare against.
//
// Reads newline-delimited base64 inputs on stdin. For each line it writes one
// line: the base64 of JSON.stringify(JSON.parse(input)) as UTF-8, or
// "ERR <message>" when JSON.parse throws. Runs until stdin closes, so one
// process serves a whole test binary.
'use strict';

const readline = require('readline');

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  const input = Buffer.from(line, 'base64').toString('utf8');
  let answer;
  try {
    answer = Buffer.from(JSON.stringify(JSON.parse(input)), 'utf8').toString('base64');
  } catch (e) {
    answer = 'ERR ' + String(e && e.message).replace(/[\r\n]+/g, ' ');
  }
  process.stdout.write(answer + '\n');
});
