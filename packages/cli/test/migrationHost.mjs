// One host process of the live-migration test, running the README's example (packages/cli/test/examples/migrate.ts):
//   save ADDRESS GO STATE-FILE   start the work, write the saved state, and die (SIGKILL: no finalizer runs)
//   take ADDRESS STATE-FILE      take the guest over and print what each restored process gave, as JSON
import { Transport, parseAddressSync } from "@gcs-bridge/transport"
import { Effect } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { startAndSave, takeOver } from "./examples/migrate.ts"

const [mode, address, ...rest] = process.argv.slice(2)
const program =
  mode === "save"
    ? Effect.map(startAndSave(parseAddressSync(address), rest[0]), (state) => {
        writeFileSync(rest[1], state)
        process.kill(process.pid, "SIGKILL")
      })
    : Effect.map(takeOver(parseAddressSync(address), readFileSync(rest[0], "utf8")), (results) =>
        console.log(`results ${JSON.stringify(results)}`)
      )
Effect.runPromise(program.pipe(Effect.scoped, Effect.provide(Transport.layer))).catch((error) => {
  console.error(error)
  process.exit(1)
})
