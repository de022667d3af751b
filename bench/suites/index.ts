/**
 * The registry bench/main.ts runs: every suite, in the order of the report
 * (and the order `npm run bench` runs them in).
 */
import type { BenchSuite } from "../lib/types.js"
import { suite as churn } from "./churn.js"
import { suite as codec } from "./codec.js"
import { suite as rpc } from "./rpc.js"
import { suite as scale } from "./scale.js"
import { suite as stdio } from "./stdio.js"
import { suite as transport } from "./transport.js"

/** Every benchmark suite. */
export const suites: ReadonlyArray<BenchSuite> = [codec, transport, rpc, stdio, churn, scale]
