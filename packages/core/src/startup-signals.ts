// SIGHUP, SIGTERM and SIGINT from the moment an app's main module starts loading, imported for
// that by name (`@bullpen/core/startup-signals`) ahead of everything else: loading the rest takes
// seconds on a busy machine, and until an app listens Node's default for each is to exit at once,
// or, as a container's PID 1, to ignore it. A `kill -HUP` meant to reload keys would kill an app
// still starting, and a `docker stop` in those seconds would go unheard until Docker kills it.
// While caught, a SIGHUP is remembered for the app to act on once it can (handOver says so), and
// SIGTERM or SIGINT ends the process at once: nothing has been started that needs stopping.
//
// Loads nothing but Node's own modules, or it would defeat its purpose.

/** The signals caught from import until the app hands each over to a listener of its own. */
export type StartupSignal = 'SIGHUP' | 'SIGTERM' | 'SIGINT';

const caught = new Map<StartupSignal, () => void>();
let hangUpWhileStarting = false;

function catchSignal(signal: StartupSignal, listener: () => void): void {
  caught.set(signal, listener);
  process.on(signal, listener);
}

catchSignal('SIGHUP', () => {
  hangUpWhileStarting = true;
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  catchSignal(signal, () => {
    process.stderr.write(`bullpen: ${signal} while starting: exiting before serving anything\n`);
    process.exit(0);
  });
}

/**
 * Stops catching `signal`: the app listens to it from now on (so add that listener first, in the
 * same tick). True when a SIGHUP came while it was caught, which the app then acts on once.
 */
export function handOver(signal: StartupSignal): boolean {
  const listener = caught.get(signal);
  if (listener) {
    process.off(signal, listener);
    caught.delete(signal);
  }
  if (signal !== 'SIGHUP') return false;
  const came = hangUpWhileStarting;
  hangUpWhileStarting = false;
  return came;
}
