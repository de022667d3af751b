/**
 * Options of the guest: where the host is, how patiently to reach it, how to
 * misbehave on purpose, and a few limits.
 *
 * @since 0.1.0
 */
import type { Address } from "@gcs-bridge/transport"
import { MessageType } from "@gcs-bridge/protocol"
import { Duration } from "effect"
import type { Fault } from "./Fault.js"

/**
 * Options of `Guest.serve`, `Guest.run` and `Guest.layer`. Only `address` is
 * required.
 *
 * @since 0.1.0
 */
export interface GuestOptions {
  /**
   * The host as this guest reaches it. The bridge is port {@link GuestOptions.port}
   * of it and every stdio port is dialled on it too: `vsock://2` inside a VM,
   * `unix:///run/vm.sock` behind hybrid vsock (the guest side of a Firecracker /
   * Cloud Hypervisor host listening on `hybrid:///run/vm.sock`: ports are the
   * Unix sockets `<path>_<port>`), `memory://<name>` in tests.
   */
  readonly address: Address
  /** The bridge port; default `0x40000000` (`LinuxGcsVsockPort`). */
  readonly port?: number
  /** Serve one connection and stop, instead of re-dialling after it ends (the Linux GCS re-dials forever). */
  readonly once?: boolean
  /**
   * How long to keep trying to reach the host for each connection; default
   * forever (`Duration.infinity`), as the Linux GCS. When it runs out, `run`
   * fails with `ConnectTimeout`.
   */
  readonly connectTimeout?: Duration.Input
  /** Pause after the first failed dial; default 100 ms. It doubles after each further failure, up to `maxRetryInterval`. */
  readonly retryInterval?: Duration.Input
  /** Longest pause between two failed dials; default 1 s. */
  readonly maxRetryInterval?: Duration.Input
  /** Pause before re-dialling after a connection ended; default 100 ms, as the Linux GCS. */
  readonly redialDelay?: Duration.Input
  /** Deadline of one stdio dial; a timed-out dial is retried up to 10 times, 100 ms apart (§11.5). Default 5 s. */
  readonly stdioConnectTimeout?: Duration.Input
  /** Misbehaviours to inject on every connection (see `Fault`). */
  readonly faults?: ReadonlyArray<Fault>
  /**
   * Largest inbound frame, header included; a bigger one ends the connection.
   * The Linux GCS has no limit (host messages may legitimately exceed 64 KiB);
   * default 16 MiB so that memory stays bounded.
   */
  readonly maxFrameSize?: number
  /** Requests handled at once before the guest stops reading; default 1024. */
  readonly maxInFlight?: number
  /**
   * Terminals for console processes (`EmulateConsole`, OCI `terminal`):
   * `"auto"` (default) uses the Python pty helper when `python` runs, `"none"`
   * never does (console processes then get plain pipes, stderr folded into stdout).
   */
  readonly console?: "auto" | "none"
  /** The Python 3 interpreter for the pty helper; default `python3` (looked up on `PATH`). */
  readonly python?: string
  /** Working directory of UVM processes that name none; default the guest's own. */
  readonly workingDirectory?: string
}

/**
 * {@link GuestOptions} with every default filled in.
 *
 * @since 0.1.0
 */
export interface ResolvedGuestOptions {
  readonly address: Address
  readonly port: number
  readonly once: boolean
  readonly connectTimeout: Duration.Duration
  readonly retryInterval: Duration.Duration
  readonly maxRetryInterval: Duration.Duration
  readonly redialDelay: Duration.Duration
  readonly stdioConnectTimeout: Duration.Duration
  readonly faults: ReadonlyArray<Fault>
  readonly maxFrameSize: number
  readonly maxInFlight: number
  readonly console: "auto" | "none"
  readonly python: string
  readonly workingDirectory: string
}

/**
 * Fills in the defaults.
 *
 * @since 0.1.0
 */
export const resolve = (options: GuestOptions): ResolvedGuestOptions => ({
  address: options.address,
  port: options.port ?? MessageType.LinuxGcsVsockPort,
  once: options.once ?? false,
  connectTimeout: Duration.fromInputUnsafe(options.connectTimeout ?? Duration.infinity),
  retryInterval: Duration.fromInputUnsafe(options.retryInterval ?? Duration.millis(100)),
  maxRetryInterval: Duration.fromInputUnsafe(options.maxRetryInterval ?? Duration.seconds(1)),
  redialDelay: Duration.fromInputUnsafe(options.redialDelay ?? Duration.millis(100)),
  stdioConnectTimeout: Duration.fromInputUnsafe(options.stdioConnectTimeout ?? Duration.seconds(5)),
  faults: options.faults ?? [],
  maxFrameSize: options.maxFrameSize ?? 16 * 1024 * 1024,
  maxInFlight: options.maxInFlight ?? 1024,
  console: options.console ?? "auto",
  python: options.python ?? "python3",
  workingDirectory: options.workingDirectory ?? process.cwd()
})
