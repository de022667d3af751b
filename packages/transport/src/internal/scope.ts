import { Effect, ExecutionStrategy, Exit, Scope } from "effect"

/**
 * Runs a scoped acquisition in a child of the current scope: on failure or
 * interruption (a deadline) whatever it acquired is released at once; on
 * success it lives as long as the current scope.
 */
export const inChildScope = <A, E, R>(
  effect: Effect.Effect<A, E, R | Scope.Scope>
): Effect.Effect<A, E, R | Scope.Scope> =>
  Effect.flatMap(Scope.Scope, (parent) =>
    Effect.flatMap(Scope.fork(parent, ExecutionStrategy.sequential), (child) =>
      effect.pipe(
        Scope.extend(child),
        Effect.onExit((exit) => (Exit.isFailure(exit) ? Scope.close(child, exit) : Effect.void))
      )
    )
  )
