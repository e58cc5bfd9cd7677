// Node programs in the states the timeout detector must classify, against 127.0.0.1:PORT.
// libuv's loop waits in one epoll_wait whose timeout is the loop's next timer, with its own
// wake-up eventfd/pipe registered next to the sockets.
//
//   node clients.js get-no-timeout PORT     http.get, no timeout               missing
//   node clients.js get-timeout-large PORT  http.get, timeout: 10 minutes      too_large
//   node clients.js server-idle PORT        an idle http server                ok
//   node clients.js keepalive-idle PORT     answered keep-alive socket idling  ok
//
// Each mode prints "ready" once set up, then runs until killed.
'use strict';
const http = require('http');

const [mode, port] = process.argv.slice(2);
const url = `http://127.0.0.1:${port}/`;
const ready = () => console.log('ready');

switch (mode) {
  case 'get-no-timeout':
    http.get(url, { agent: false }, (res) => res.resume());
    ready();
    break;
  case 'get-timeout-large':
    http.get(url, { agent: false, timeout: 600000 }, (res) => res.resume());
    ready();
    break;
  case 'server-idle':
    http.createServer((req, res) => res.end('ok')).listen(Number(port), '127.0.0.1', ready);
    break;
  case 'keepalive-idle': {
    const agent = new http.Agent({ keepAlive: true });
    http.get(url, { agent }, (res) => {
      res.resume();
      res.on('end', ready);
    });
    // The pool's idle socket does not keep the loop alive; an application's own timer does.
    setInterval(() => {}, 3600 * 1000);
    break;
  }
  default:
    console.error(`unknown mode ${mode}`);
    process.exit(2);
}
