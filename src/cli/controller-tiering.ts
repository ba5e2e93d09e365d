// V8 tiering for the controller process, set before any other module of the controller is evaluated (this module is
// the first import of cli/controller.ts, and ES modules evaluate in import order).
//
// Why: the controller works in bursts (a thousand triggers applied at once, a relist) of code that then runs a few
// thousand times and goes quiet again. At V8's default thresholds (Maglev after 400 calls, TurboFan after 3000) it
// compiled optimized code for most of that path on background threads while the burst ran, and the burst was over
// before the optimized code paid that back. Measured with bench/controller.ts's setting (1000 new triggers, a
// private API server, 6 paired rounds): V8 worker threads 0.17 → 0.07 CPU s per 1000 Deployments created, the main
// thread unchanged within noise, total CPU 0.75 → 0.73 s and Deployments/s +5% (the API server on the same two
// cores gets the CPU). Code that really is hot (protobuf decoding of a large list: millions of calls) still reaches
// both tiers. The dispatcher, a steady high-rate process, keeps V8's defaults.

import { setFlagsFromString } from 'node:v8';

export const CONTROLLER_V8_FLAGS = [
  '--invocation-count-for-maglev=4000',
  '--invocation-count-for-turbofan=30000',
  '--invocation-count-for-maglev-osr=1000',
  '--invocation-count-for-osr=5000',
] as const;

for (const flag of CONTROLLER_V8_FLAGS) setFlagsFromString(flag);
