// SIGINT/SIGTERM run the shutdown once; a second signal exits at once.
export function onShutdown(shutdown: () => Promise<void>, log: { info(msg: string): void }): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    log.info(`received ${signal}, shutting down`);
    shutdown()
      .then(() => process.exit(0))
      .catch(() => process.exit(1));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
