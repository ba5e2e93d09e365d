// `kubeless-pulsar-trigger controller`: parse the configuration, start the controller, stop cleanly on SIGTERM
// (workers drained, watches closed, Lease released so a standby takes over at once).

// First: V8 flags for this process, before the other modules are evaluated.
import './controller-tiering.ts';
import { pino } from 'pino';
import { parseConfig, usage } from '../controller/config.ts';
import { startController } from '../controller/controller.ts';
import { ControllerError, describe } from '../controller/errors.ts';
import { type KubeConnection, loadKubeConnection } from '../controller/kubeapi.ts';

export async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage());
    return 0;
  }
  const parsed = parseConfig(argv, process.env);
  if (!parsed.ok) {
    process.stderr.write(`kubeless-pulsar-trigger controller: ${parsed.error.message}\n\n${usage()}`);
    return 2;
  }
  const config = parsed.value;
  const log = pino({ level: config.logLevel, base: { component: 'controller' } });
  let conn: KubeConnection;
  try {
    conn = loadKubeConnection(config.kubeconfig);
  } catch (e) {
    log.fatal(
      { code: e instanceof ControllerError ? e.code : undefined, error: describe(e) },
      'no Kubernetes configuration',
    );
    return 2;
  }

  let stopping: Promise<void> | undefined;
  let exitCode = 0;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => {
    resolveDone = r;
  });
  const controller = await startController(config, conn, log, (reason) => {
    log.error({ reason }, 'stopping');
    exitCode = 1;
    void shutdown();
  });
  log.info(
    {
      image: config.dispatcherImage,
      namespaces: config.namespaces.length ? config.namespaces : 'all',
      allowCrossNamespace: config.allowCrossNamespace.map((g) => `${g.from}=${g.to}`),
    },
    'controller started',
  );
  function shutdown(): Promise<void> {
    stopping ??= controller
      .stop()
      .catch((e) => log.error({ error: describe(e) }, 'stop failed'))
      .finally(() => {
        log.info('stopped');
        resolveDone(exitCode);
      });
    return stopping;
  }
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());
  return done;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Sockets kept alive by the API client must not hold the process after a clean stop.
      setTimeout(() => process.exit(code), 200).unref();
    },
    (e) => {
      process.stderr.write(`kubeless-pulsar-trigger controller: ${describe(e)}\n`);
      process.exit(1);
    },
  );
}
