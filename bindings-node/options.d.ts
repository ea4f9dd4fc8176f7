/* The hand-written types of index.d.ts (its header, dts-header.d.ts, exports them). */
import type { ProgressStream } from './index'
import type { ProgressEvent, RestorePoint, RestoreRequest } from './types'

/** Options of `RestoreExecutor.run()`. */
export interface RunOptions {
  /** Receives each progress event; it never keeps the process alive, and an exception it throws is printed, not fatal to the run. */
  onProgress?: (event: ProgressEvent) => void
  /** A `ProgressStream` to read the events from with `for await` (one run per stream). */
  progress?: ProgressStream
  /** Cancels the run: it cleans up and resolves with outcome `cancelled`. */
  signal?: AbortSignal
}

/** A demo restore from `buildDemo()`. */
export interface DemoRestore {
  name: string
  restore_point: RestorePoint
  request: RestoreRequest
}
