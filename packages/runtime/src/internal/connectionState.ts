/** What every container and process of one guest connection shares. */
import type { Address, TransportService } from "@gcs-bridge/transport"
import type { Duration } from "effect"
import type { Bridge } from "./bridge.js"
import type { Registry } from "./registry.js"

/** The state of one negotiated guest connection. */
export interface ConnectionState {
  readonly bridge: Bridge
  readonly transport: TransportService
  /** Where stdio listeners are bound. */
  readonly address: Address
  /** `"linux"` or `"windows"` (the negotiated `RuntimeOsType`). */
  readonly os: string
  readonly registry: Registry
  readonly stdioAcceptTimeout: Duration.Input | undefined
  /** Bound on the finalizers' kill / terminate / wait. */
  readonly closeTimeout: Duration.Duration
  /** Next stdio port (§11.4): per connection, never reused. */
  readonly allocatePort: () => number
}
