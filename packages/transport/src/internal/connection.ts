/**
 * The one Connection implementation over any RawSocket: the only socket state machine.
 * Reading: inbound chunks go to an Inbox; a pull takes all of it and re-arms the socket, so at most `ReadAhead`
 * bytes plus one engine read are held (the socket is stopped at `ReadAhead` until the next pull). A `forEach`
 * consumer gets each chunk in the engine's own callback instead: no queue, no fiber woken per read. `pipeTo`
 * hands the reading to the engine itself where it can move bytes into a descriptor in the kernel.
 * Writing: a write leaving the engine above its high-water mark waits on a latch the drain opens; a write of more
 * than `WriteSlice` bytes is offered a slice at a time, each after the drain, with later writes waiting their
 * turn; the half-close is issued once the engine's queue is flushed. The first failure fails reads and writes alike.
 * Dialling: the engines share the deadline, a child scope releasing a failed attempt at once, and the host side
 * of the Firecracker / Cloud Hypervisor hybrid handshake: send `CONNECT <port>\n`; the VMM answers
 * `OK <assigned port>\n` once the guest accepted, or hangs up when nothing listens on that guest port. Bytes
 * the guest sends right after the answer are kept for the Connection.
 */
import { Deferred, Duration, Effect, Exit, Latch, Scope, Semaphore, Sink, Stream } from "effect"
import { type Address, formatAddress, type MemoryAddress } from "../Address.js"
import type { Connection, PeerIdentity, PipeOptions } from "../Connection.js"
import type { TransportError } from "../TransportError.js"
import { copyFrom, copyInto, withDescriptor } from "./descriptor.js"
import { Inbox } from "./inbox.js"
import { describe, osError, type RawSocket, type Target, toRawError, transportError } from "./rawSocket.js"

/** What the engine's pump refuses and JavaScript can still do: no splice here (ENOSYS), or a blocking socket as the
 * descriptor (EINVAL), which would block the loop but only a thread-pool thread of `fs`. */
const engineCannot = (cause: unknown) => /^(ENOSYS|EINVAL)$/.test(toRawError(cause).code)

const byteLength = (chunks: ReadonlyArray<Uint8Array>) => {
  let total = 0
  for (const chunk of chunks) total += chunk.length
  return total
}

/** Bytes read ahead of the consumer before the socket is paused. */
const ReadAhead = 256 * 1024

/**
 * Bytes one engine write is offered at most. The native engine copies what the kernel did not take into its own
 * queue, so a writeAll of many chunks offered at once would be copied nearly whole (a Stream of 4,096 chunks per
 * pull: 256 MiB copied, the caller's memory doubled); a slice at a time after each drain bounds that copy.
 */
export const WriteSlice = 1024 * 1024

/** A Connection owning `raw`, closed with the current scope; `initial` (bytes read in a handshake) comes first. */
export const makeConnection = (
  raw: RawSocket,
  target: Target,
  peer: PeerIdentity,
  initial: ReadonlyArray<Uint8Array> = []
): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.map(
    Effect.acquireRelease(open(raw, target, peer, initial), (state) => Effect.sync(state.close)),
    (state) => state.connection
  )

const open = Effect.fnUntraced(function* (
  raw: RawSocket,
  target: Target,
  peer: PeerIdentity,
  initial: ReadonlyArray<Uint8Array>
) {
  const description = describe(target)
  const inbox = new Inbox<TransportError>()
  // Made by the first write left above the high-water mark: a connection that only reads never needs one.
  let drained: Latch.Latch | undefined
  const halfClosed = yield* Deferred.make<void, TransportError>()
  let buffered = 0
  let reading = false
  let ended = false
  let closed = false
  let consumed = false
  let writeEnded = false
  let shutdownIssued = false
  let touched = initial.length > 0
  let writeFailure: TransportError | undefined
  // Sliced writes running or waiting their turn, and the turn they take (made by the first one).
  let slicing = 0
  let turn: Semaphore.Semaphore | undefined
  let readFailure: TransportError | undefined
  // The `forEach` consumer while it runs: its callback and how to end it.
  let listener: ((chunk: Uint8Array) => void) | undefined
  let finish: ((exit: Exit.Exit<void, TransportError>) => void) | undefined
  // The descriptor the engine pipes into, for good once set: the input has no other reader afterwards.
  let pipedInto: number | undefined
  // The descriptor the engine sends from until it reports `piped`, and who waits for that.
  let pipingFrom: number | undefined
  let pipedFrom: ((exit: Exit.Exit<void, TransportError>) => void) | undefined
  // Who hears the engine's pump count as it grows.
  let onProgress: ((moved: number) => void) | undefined

  const closedError = (what: string) =>
    transportError("Closed", target, `${what} on a closed connection (${description})`)

  const stopReading = () => {
    if (!reading) return
    reading = false
    raw.readStop()
  }
  const startReading = () => {
    touched = true
    if (reading || closed || ended || writeFailure !== undefined || buffered >= ReadAhead) return
    reading = true
    raw.readStart()
  }
  const settle = (exit: Exit.Exit<void, TransportError>) => {
    const resume = finish
    listener = finish = undefined
    resume?.(exit)
  }
  const settleFrom = (exit: Exit.Exit<void, TransportError>) => {
    const resume = pipedFrom
    pipedFrom = undefined
    resume?.(exit)
  }
  const fail = (cause: unknown, syscall?: string) => {
    if (closed || writeFailure !== undefined) return
    reading = false
    writeFailure = osError("Write", target, description, cause, syscall)
    // While a pump runs, the engine names the descriptor's failures `splice`: the socket itself was sound.
    const descriptor = toRawError(cause, syscall).syscall === "splice"
    readFailure =
      descriptor && pipedInto !== undefined
        ? osError("Write", target, `${description}: piping into descriptor ${pipedInto}`, cause, syscall)
        : osError("Read", target, description, cause, syscall)
    settleFrom(
      Exit.fail(
        descriptor && pipingFrom !== undefined
          ? osError("Read", target, `${description}: piping from descriptor ${pipingFrom}`, cause, syscall)
          : writeFailure
      )
    )
    inbox.fail(readFailure)
    settle(Exit.fail(readFailure))
    Deferred.doneUnsafe(halfClosed, Exit.fail(writeFailure))
    drained?.openUnsafe()
  }
  const shutdownWhenFlushed = () => {
    if (
      !writeEnded ||
      shutdownIssued ||
      closed ||
      writeFailure !== undefined ||
      raw.queued > 0 ||
      slicing > 0
    )
      return
    shutdownIssued = true
    try {
      raw.shutdown(() => Deferred.doneUnsafe(halfClosed, Exit.void))
    } catch (cause) {
      fail(cause, "shutdown")
    }
  }
  // Counted first: a waiting pull takes the chunks inside `offer`.
  const enqueue = (chunks: ReadonlyArray<Uint8Array>) => {
    buffered += byteLength(chunks)
    inbox.offer(chunks)
  }

  raw.bind({
    data: (chunks) => {
      // A forEach consumer gets each chunk; what follows its end (a throw) is kept for the next consumer.
      let next = 0
      while (listener !== undefined && next < chunks.length) {
        if (closed) return
        const chunk = chunks[next++]!
        if (chunk.length > 0) deliver(listener, chunk)
      }
      if (closed || next === chunks.length) return
      enqueue(next === 0 ? chunks : chunks.slice(next))
      if (buffered >= ReadAhead) stopReading()
    },
    end: () => {
      ended = true
      reading = false
      inbox.end()
      settle(Exit.void)
    },
    error: fail,
    drain: () => {
      drained?.openUnsafe()
      shutdownWhenFlushed()
    },
    piped: () => {
      pipingFrom = undefined
      settleFrom(Exit.void)
    },
    progress: () => onProgress?.(raw.piped ?? 0)
  })
  enqueue(initial)

  const pull = Effect.suspend(() => {
    if (closed) return Effect.fail(closedError("read"))
    startReading()
    return Effect.map(inbox.take, (chunks) => {
      for (const chunk of chunks) buffered -= chunk.length
      // Read ahead while the consumer works on what it just took.
      startReading()
      return chunks
    })
  })

  // A consumer that throws must not throw into the engine's callback: its forEach dies with the defect.
  const deliver = (onChunk: (chunk: Uint8Array) => void, chunk: Uint8Array) => {
    try {
      onChunk(chunk)
    } catch (defect) {
      settle(Exit.die(defect))
    }
  }

  const claim = Effect.acquireRelease(
    Effect.suspend(() => {
      if (consumed) {
        const why = `${description}: the stream already has a consumer (a Connection's stream is single-consumer)`
        return Effect.fail(transportError("Read", target, why))
      }
      if (pipedInto !== undefined) {
        const why = `${description}: the input was piped into descriptor ${pipedInto} and has no other reader`
        return Effect.fail(transportError("Read", target, why))
      }
      consumed = true
      return Effect.void
    }),
    () => Effect.sync(() => ((consumed = false), stopReading()))
  )

  const forEach = (onChunk: (chunk: Uint8Array) => void): Effect.Effect<void, TransportError> =>
    Effect.scoped(
      Effect.andThen(
        claim,
        Effect.callback<void, TransportError>((resume) => {
          if (closed) return resume(Effect.fail(closedError("read")))
          // What was read ahead (handshake leftovers, an earlier stream consumer's) comes first, then the end.
          // Here a consumer's throw is the fiber's own: it dies of it.
          for (const chunk of inbox.takeAllUnsafe()) {
            buffered -= chunk.length
            onChunk(chunk)
          }
          if (closed) return resume(Effect.fail(closedError("read")))
          if (readFailure !== undefined) return resume(Effect.fail(readFailure))
          if (ended) return resume(Effect.void)
          listener = onChunk
          finish = resume
          startReading()
          return Effect.sync(() => {
            if (listener === onChunk) listener = finish = undefined
          })
        })
      )
    )

  // The input as a stream without the consumer claim, for a consumer that holds it already.
  const unclaimed = Stream.fromPull(Effect.succeed(pull))

  // Chunk by chunk through JavaScript: engines without a pipe of their own, or bytes already read ahead.
  const copyTo = (fd: number, options: PipeOptions) => copyInto(unclaimed, fd, target, description, options)

  // In the kernel, by the engine: nothing was read ahead, so nothing passes through JavaScript.
  const pipeInEngine = (fd: number, options: PipeOptions, pipe: (fd: number) => void) => {
    try {
      pipe(fd)
    } catch (cause) {
      if (engineCannot(cause)) return copyTo(fd, options)
      return Effect.fail(
        osError("Write", target, `${description}: piping into descriptor ${fd}`, cause, "pipeTo")
      )
    }
    pipedInto = fd
    const piped = Effect.callback<void, TransportError>((resume) => {
      const done = (exit: Exit.Exit<void, TransportError>) => resume(exit)
      finish = done
      startReading()
      return Effect.sync(() => {
        if (finish === done) finish = undefined
      })
    })
    return engineCount(options.stop === undefined ? piped : Effect.raceFirst(piped, options.stop), options)
  }

  // The engine's pump while `running`: its progress heard meanwhile, its count once done.
  const engineCount = (
    running: Effect.Effect<unknown, TransportError>,
    options: Pick<PipeOptions, "onProgress">
  ) =>
    Effect.suspend(() => {
      onProgress = options.onProgress
      return Effect.map(
        Effect.ensuring(
          running,
          Effect.sync(() => void (onProgress = undefined))
        ),
        () => raw.piped ?? 0
      )
    })

  const pipeTo = (fd: number, options: PipeOptions = {}): Effect.Effect<number, TransportError> =>
    Effect.scoped(
      Effect.andThen(
        claim,
        Effect.suspend(() => {
          if (closed) return Effect.fail(closedError("read"))
          return withDescriptor(fd, target, description, "pipeTo", () => {
            const inEngine = raw.pipeTo !== undefined && buffered === 0 && !ended && readFailure === undefined
            return inEngine ? pipeInEngine(fd, options, raw.pipeTo!.bind(raw)) : copyTo(fd, options)
          })
        })
      )
    )

  // In the kernel, by the engine, when nothing waits in its send queue; else chunk by chunk.
  const pipeFrom = (
    fd: number,
    options: Pick<PipeOptions, "onProgress"> = {}
  ): Effect.Effect<number, TransportError> =>
    Effect.suspend(() => {
      const error = writeError()
      if (error !== undefined) return Effect.fail(error)
      return withDescriptor(fd, target, description, "pipeFrom", () => {
        // Chunk by chunk, with other writes refused as the engine refuses them.
        const copy = () => {
          pipingFrom = fd
          const send = (chunk: Uint8Array) => writeAll([chunk], true)
          return Effect.ensuring(
            copyFrom(fd, send, target, description, options.onProgress, () => writeError(true)),
            Effect.sync(() => void (pipingFrom = undefined))
          )
        }
        if (raw.pipeFrom === undefined || raw.queued > 0 || slicing > 0) return copy()
        try {
          raw.pipeFrom(fd)
        } catch (cause) {
          if (engineCannot(cause)) return copy()
          return Effect.fail(
            osError("Read", target, `${description}: piping from descriptor ${fd}`, cause, "pipeFrom")
          )
        }
        touched = true
        pipingFrom = fd
        // Interrupting the wait leaves the engine sending up to the descriptor's end (or the close).
        const piped = Effect.callback<void, TransportError>((resume) => {
          pipedFrom = resume
          return Effect.sync(() => {
            if (pipedFrom === resume) pipedFrom = undefined
          })
        })
        return engineCount(piped, options)
      })
    })

  // Why nothing more can be written at all: the connection closed or failed.
  const broken = (): TransportError | undefined => (closed ? closedError("write") : writeFailure)

  const writeError = (piping = false): TransportError | undefined =>
    broken() ??
    (writeEnded
      ? transportError("Write", target, `${description}: write after endWrite`, "EPIPE", "write")
      : pipingFrom !== undefined && !piping
        ? transportError(
            "Write",
            target,
            `${description}: sending from descriptor ${pipingFrom}`,
            "EBUSY",
            "write"
          )
        : undefined)

  // For a write that resumes after waiting: it fails if the connection broke meanwhile.
  const stillWritable = Effect.suspend(() => {
    const error = broken()
    return error === undefined ? Effect.void : Effect.fail(error)
  })

  const afterDrain = Effect.andThen(
    Effect.suspend(() => drained!.await),
    stillWritable
  )

  // Hands `chunks` to the engine: done, or the wait for its drain when it is left above the high-water mark (or, with
  // `more` to come, holding anything: what it holds, it copied).
  const offer = (
    chunks: ReadonlyArray<Uint8Array>,
    more = false
  ): Effect.Effect<void, TransportError> | undefined => {
    try {
      if (raw.write(chunks) && !(more && raw.queued > 0)) return undefined
    } catch (cause) {
      fail(cause, "write")
      return Effect.fail(writeFailure!)
    }
    drained ??= Latch.makeUnsafe()
    drained.closeUnsafe()
    return afterDrain
  }

  // `chunks` a slice of at most WriteSlice bytes at a time from `index` / `offset` on, each after the last drained.
  const offerSlices = (
    chunks: ReadonlyArray<Uint8Array>,
    index: number,
    offset: number
  ): Effect.Effect<void, TransportError> => {
    while (index < chunks.length) {
      const slice: Array<Uint8Array> = []
      let room = WriteSlice
      while (room > 0 && index < chunks.length) {
        const chunk = chunks[index]!
        const take = Math.min(room, chunk.length - offset)
        slice.push(offset === 0 && take === chunk.length ? chunk : chunk.subarray(offset, offset + take))
        room -= take
        offset += take
        if (offset === chunk.length) {
          index++
          offset = 0
        }
      }
      const waiting = offer(slice, index < chunks.length)
      if (waiting === undefined) continue
      if (index === chunks.length) return waiting
      // The loop ends here, so `index` and `offset` keep these values for the continuation.
      return Effect.andThen(
        waiting,
        Effect.suspend(() => offerSlices(chunks, index, offset))
      )
    }
    return Effect.void
  }

  const sliced = (chunks: ReadonlyArray<Uint8Array>) => {
    slicing++
    turn ??= Semaphore.makeUnsafe(1)
    return Effect.ensuring(
      turn.withPermits(1)(
        Effect.andThen(
          stillWritable,
          Effect.suspend(() => offerSlices(chunks, 0, 0))
        )
      ),
      Effect.sync(() => {
        slicing--
        shutdownWhenFlushed()
      })
    )
  }

  const writeAll = (chunks: ReadonlyArray<Uint8Array>, piping = false): Effect.Effect<void, TransportError> =>
    Effect.suspend(() => {
      const error = writeError(piping)
      if (error !== undefined) return Effect.fail(error)
      touched = true
      const nonEmpty =
        chunks.length === 1 && chunks[0]!.length > 0 ? chunks : chunks.filter((c) => c.length > 0)
      if (nonEmpty.length === 0) return Effect.void
      // A write behind a sliced one waits its turn, so that the bytes of each write stay together.
      if (slicing > 0 || byteLength(nonEmpty) > WriteSlice) return sliced(nonEmpty)
      return offer(nonEmpty) ?? Effect.void
    })

  const endWrite = Effect.suspend(() => {
    if (!writeEnded) {
      const error = writeError()
      if (error !== undefined) return Effect.fail(error)
      writeEnded = true
      shutdownWhenFlushed()
    }
    return Deferred.await(halfClosed)
  })

  const close = () => {
    if (closed) return
    closed = true
    reading = false
    raw.close()
    // A pending read and a half-close still in flight end with `Closed`. The error (a stack trace and a Schema
    // construction) is built only for a reader that can be waiting, and for a half-close when it is awaited:
    // a connection closed after its end of stream, the usual stdio close, builds none.
    if (consumed && !ended && readFailure === undefined) {
      const error = closedError("read")
      inbox.fail(error)
      settle(Exit.fail(error))
    }
    if (pipedFrom !== undefined) settleFrom(Exit.fail(closedError("write")))
    if (writeEnded)
      Deferred.doneUnsafe(
        halfClosed,
        Effect.suspend(() => Exit.fail(closedError("endWrite")))
      )
    drained?.openUnsafe()
  }

  const connection: Connection = {
    description,
    peer,
    stream: Stream.unwrap(Effect.as(claim, unclaimed)),
    forEach,
    pipeTo,
    pipeFrom,
    write: (chunk) => writeAll([chunk]),
    writeAll: (chunks) => writeAll(chunks),
    sink: Sink.forEachArray((chunks) => writeAll(chunks)),
    endWrite,
    close: Effect.sync(close),
    handoff: () =>
      touched || closed || writeEnded || writeFailure !== undefined ? undefined : raw.handoff?.()
  }
  return { connection, close }
})

const DefaultHybridConnectTimeout = Duration.seconds(10)
/** Longest acceptable answer line: `OK 4294967295\n` is 14 bytes. */
const MaxReplyBytes = 32

/**
 * Connects to vsock port `port` of `address` within `timeout` (default: 10 s for hybrid, else none): `open`
 * dials, then the hybrid handshake runs where due, all in a child scope released at once on failure or expiry.
 */
export const dial = (
  address: Exclude<Address, MemoryAddress>,
  port: number,
  timeout: Duration.Input | undefined,
  open: (target: Target) => Effect.Effect<readonly [RawSocket, PeerIdentity], TransportError, Scope.Scope>
): Effect.Effect<Connection, TransportError, Scope.Scope> => {
  const target = { address: formatAddress(address), port }
  const hybrid = address._tag === "HybridAddress"
  const connect = Effect.flatMap(open(target), ([raw, peer]) =>
    Effect.flatMap(hybrid ? hybridHandshake(raw, port, target) : Effect.succeed([]), (leftover) =>
      makeConnection(raw, target, peer, leftover)
    )
  )
  const deadline = timeout ?? (hybrid ? DefaultHybridConnectTimeout : undefined)
  const bounded =
    deadline === undefined
      ? connect
      : Effect.timeoutOrElse(connect, {
          duration: deadline,
          orElse: () => {
            const why = `connecting to ${describe(target)} took longer than ${Duration.format(Duration.fromInputUnsafe(deadline))}`
            return Effect.fail(transportError("ConnectTimeout", target, why, "ETIMEDOUT", "connect"))
          }
        })
  return Effect.gen(function* () {
    const child = yield* Scope.fork(yield* Effect.scope)
    return yield* bounded.pipe(
      Scope.provide(child),
      Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(child, exit) : Effect.void))
    )
  })
}

/** The handshake on `raw` (not yet reading): the bytes after the answer. Interruption leaves closing to the owner. */
const hybridHandshake = (raw: RawSocket, port: number, target: Target) =>
  Effect.callback<ReadonlyArray<Uint8Array>, TransportError>((resume) => {
    let received = Buffer.alloc(0)
    let settled = false
    const settle = (effect: Effect.Effect<ReadonlyArray<Uint8Array>, TransportError>) => {
      if (settled) return
      settled = true
      raw.readStop()
      resume(effect)
    }
    const fail = (error: TransportError) => settle(Effect.fail(error))
    const failed = (cause: unknown, syscall?: string) =>
      fail(osError("Connect", target, "hybrid vsock handshake failed", cause, syscall))
    // A VMM that hangs up refuses the connection (nothing listens on that guest
    // port); one that answers anything but `OK <n>` is refused by us.
    const refuse = (why: string, code: "ECONNREFUSED" | "EPROTO") =>
      fail(transportError(code === "EPROTO" ? "PeerRefused" : "Connect", target, why, code, "connect"))
    const notOk = (answer: Uint8Array, more = "") => {
      const text = JSON.stringify(Buffer.from(answer).toString("latin1"))
      refuse(`the VMM answered CONNECT ${port} with ${text}${more}, not OK <port>`, "EPROTO")
    }
    raw.bind({
      data: (chunks) => {
        if (settled) return
        received = Buffer.concat([received, ...chunks])
        const end = received.indexOf(0x0a)
        if (end < 0) {
          if (received.length > MaxReplyBytes) notOk(received.subarray(0, MaxReplyBytes), "…")
          return
        }
        const match = /^OK ([0-9]{1,10})$/.exec(received.subarray(0, end).toString("latin1"))
        if (match === null || Number(match[1]) > 0xffffffff) return notOk(received.subarray(0, end + 1))
        const rest = received.subarray(end + 1)
        settle(Effect.succeed(rest.length > 0 ? [rest] : []))
      },
      end: () =>
        refuse(
          `the VMM closed the connection without answering CONNECT ${port}: nothing accepts on guest port ${port}`,
          "ECONNREFUSED"
        ),
      error: failed,
      drain: () => {}
    })
    try {
      raw.write([Buffer.from(`CONNECT ${port}\n`, "latin1")])
    } catch (cause) {
      return failed(cause, "write")
    }
    raw.readStart()
    return Effect.sync(() => {
      settled = true
      raw.readStop()
    })
  })
