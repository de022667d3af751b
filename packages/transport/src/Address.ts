/**
 * Where a VM endpoint lives, as data: a Schema class per kind of socket and the URL-like text form users type
 * (`vsock://3`, `hvsock://<vm-guid>`, `hybrid:///run/fc.sock`, `unix:///tmp/x.sock`, `memory://name`).
 * Port mapping (the port is always a u32 vsock port number):
 * - vsock: AF_VSOCK port P; listening binds CID any and accepts only the address's CID (any for `vsock://any`);
 * - hvsock: (VM id, `vsockServiceId(P)`), GCS-PROTOCOL §13.2;
 * - hybrid and unix: listening binds the Unix socket `<path>_<P>`; connecting on unix goes to `<path>_<P>`,
 *   on hybrid it dials `<path>` and performs the `CONNECT P\n` / `OK <n>\n` handshake;
 * - memory: an in-process network owned by the layer instance.
 */
import { Effect, Result, Schema, SchemaGetter, SchemaIssue } from "effect"
import { canonicalGuid, isGuidText } from "./internal/guid.js"
import { AddressError } from "./TransportError.js"

/** A vsock CID: an unsigned 32-bit number other than `0xffffffff` (`VMADDR_CID_ANY`, written `"any"`). */
export const Cid = Schema.Int.check(
  Schema.isBetween(
    { minimum: 0, maximum: 0xfffffffe },
    { message: "a vsock CID is an integer from 0 to 4294967294" }
  )
)

/** A GUID in its 36-character dashed text form, held in lower case. */
export const GuidText = Schema.String.check(
  Schema.isPattern(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, {
    message: "expected a lower-case GUID such as 6f3a1d52-52a5-4a65-b3b5-0e4b41a7e0c1"
  })
)

const nonEmptyWithout = (forbidden: RegExp, message: string) =>
  Schema.String.check(Schema.makeFilter((s) => (s.length > 0 && !forbidden.test(s)) || message))

/** A socket path: non-empty and without NUL bytes (the kernel would cut it there). */
export const SocketPath = nonEmptyWithout(/\0/, "expected a non-empty path without NUL bytes")

/** An AF_VSOCK peer: the VM with context id `cid`, or any VM (`"any"`, listening only). */
export class VsockAddress extends Schema.TaggedClass<VsockAddress>("@gcs-bridge/transport/VsockAddress")(
  "VsockAddress",
  { cid: Schema.Union([Schema.Literal("any"), Cid]) }
) {}

/** A Hyper-V socket peer: the utility VM with runtime id `vmId`. */
export class HvsockAddress extends Schema.TaggedClass<HvsockAddress>("@gcs-bridge/transport/HvsockAddress")(
  "HvsockAddress",
  { vmId: GuidText }
) {}

/** A Firecracker / Cloud Hypervisor hybrid vsock: the VMM's Unix socket `path`. */
export class HybridAddress extends Schema.TaggedClass<HybridAddress>("@gcs-bridge/transport/HybridAddress")(
  "HybridAddress",
  { path: SocketPath }
) {}

/** Unix sockets `<path>_<port>`: host listeners as a guest behind hybrid vsock sees them; also for tests. */
export class UnixAddress extends Schema.TaggedClass<UnixAddress>("@gcs-bridge/transport/UnixAddress")(
  "UnixAddress",
  { path: SocketPath }
) {}

/** A named endpoint of the in-memory network of one `Transport` layer instance. */
export class MemoryAddress extends Schema.TaggedClass<MemoryAddress>("@gcs-bridge/transport/MemoryAddress")(
  "MemoryAddress",
  { name: nonEmptyWithout(/[\s\0]/, "expected a non-empty name without whitespace") }
) {}

/** Every kind of transport address. */
export const Address = Schema.Union([VsockAddress, HvsockAddress, HybridAddress, UnixAddress, MemoryAddress])
export type Address = typeof Address.Type

const expected =
  "expected vsock://<cid>|any, hvsock://<vm-guid>, hybrid://<path>, unix://<path> or memory://<name>"

const parseResult = (text: string): Result.Result<Address, AddressError> => {
  const fail = (why: string) =>
    Result.fail(new AddressError({ input: text, message: `${JSON.stringify(text)}: ${why}` }))
  const [, scheme, rest = ""] = /^([a-z]+):\/\/(.*)$/s.exec(text) ?? []
  switch (scheme) {
    case undefined:
      return fail(expected)
    case "vsock": {
      if (rest === "any") return Result.succeed(new VsockAddress({ cid: "any" }))
      if (!/^(0|[1-9][0-9]{0,9})$/.test(rest)) return fail("a vsock CID is a decimal number or `any`")
      const cid = Number(rest)
      if (cid === 0xffffffff) return fail("CID 4294967295 is VMADDR_CID_ANY; write vsock://any")
      if (cid > 0xffffffff) return fail("a vsock CID is an unsigned 32-bit number")
      return Result.succeed(new VsockAddress({ cid }))
    }
    case "hvsock":
      return isGuidText(rest)
        ? Result.succeed(new HvsockAddress({ vmId: canonicalGuid(rest) }))
        : fail("expected hvsock://<vm-guid> with a 36-character GUID, without braces")
    case "hybrid":
    case "unix":
      if (rest.length === 0) return fail(`expected ${scheme}://<path>, e.g. ${scheme}:///run/vm.sock`)
      if (rest.includes("\0")) return fail("a socket path cannot contain NUL bytes")
      return Result.succeed(new (scheme === "hybrid" ? HybridAddress : UnixAddress)({ path: rest }))
    case "memory":
      if (rest.length === 0 || /[\s\0]/.test(rest))
        return fail("expected memory://<name> with a name without whitespace")
      return Result.succeed(new MemoryAddress({ name: rest }))
    default:
      return fail(`unknown scheme ${JSON.stringify(scheme)}; ${expected}`)
  }
}

/** Parses the text form of an address. */
export const parseAddress = (text: string): Effect.Effect<Address, AddressError> =>
  Effect.fromResult(parseResult(text))

/** Parses the text form of an address, throwing `AddressError` on bad input (for constants and tests). */
export const parseAddressSync = (text: string): Address => Result.getOrThrowWith(parseResult(text), (e) => e)

/** The text form of an address; `parseAddress(formatAddress(a))` equals `a`. */
export const formatAddress = ({ _tag, ...field }: Address): string =>
  // Every kind has one field, and its tag names the scheme (`VsockAddress` → `vsock`).
  `${_tag.slice(0, -"Address".length).toLowerCase()}://${Object.values(field)[0]}`

/** `Schema<Address, string>`: the text form on the encoded side, for configuration files and command lines. */
export const AddressFromString: Schema.Codec<Address, string> = Schema.String.pipe(
  Schema.decodeTo(Schema.toType(Address), {
    decode: SchemaGetter.transformEffect((text: string) =>
      Effect.mapError(parseAddress(text), (e) => new SchemaIssue.InvalidValue({ message: e.message }, text))
    ),
    encode: SchemaGetter.transform(formatAddress)
  })
)
