// Container health: asks the running app's /healthz on its own port.
const http = require('node:http');
const fs = require('node:fs');
// The entrypoint execs node with /app/apps/<app>/dist/main.js as PID 1.
const cmdline = (() => {
  try {
    return fs.readFileSync('/proc/1/cmdline', 'utf8');
  } catch {
    return '';
  }
})();
const app = (/\/apps\/(api|worker|exporter)\//.exec(cmdline) || [])[1] || 'api';
const ports = {
  api: process.env.PORT || '3000',
  worker: process.env.WORKER_METRICS_PORT || '9464',
  exporter: process.env.EXPORTER_PORT || '9400',
};
const req = http.get({ host: '127.0.0.1', port: Number(ports[app] || ports.api), path: '/healthz', timeout: 2500 }, (res) => {
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('error', () => process.exit(1));
req.on('timeout', () => {
  req.destroy();
  process.exit(1);
});
