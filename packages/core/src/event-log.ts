// The lifecycle event log: one JSON object per line appended to a file that rotates by size.
// Writing must never crash or block a worker: lines are buffered and flushed asynchronously,
// errors (disk full, permission denied) and lines dropped because the buffer is full (a slow or
// stuck disk) are counted and reported once, and the job goes on.
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface EventLogOptions {
  /** File to append to; rotated files are `<file>.1` (newest) … `<file>.<maxFiles>`. */
  file: string;
  /** Rotate when the file would pass this size; default 50 MiB. */
  maxBytes?: number;
  /** Rotated files kept besides the live one; default 5. */
  maxFiles?: number;
  /** Flush interval; default 200 ms. */
  flushIntervalMs?: number;
  /** Lines held in memory at most while the disk is slow or failing; default 100,000. */
  maxBufferedLines?: number;
  /** Called on the first error of a kind (code), for a log line. */
  onError?: (err: NodeJS.ErrnoException) => void;
  /** Called on the first line dropped because the buffer was full, for a log line. */
  onBufferFull?: (maxBufferedLines: number) => void;
}

export class EventLog {
  private readonly maxBytes: number;
  private readonly maxFiles: number;
  private readonly maxBufferedLines: number;
  private readonly flushIntervalMs: number;
  private buffer: string[] = [];
  private size = -1;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly reported = new Set<string>();
  /** Lines that could not be written (error or full buffer). */
  droppedLines = 0;
  /** Of those, the lines dropped because the buffer was full. */
  bufferFullLines = 0;
  /** Write errors seen. */
  errors = 0;
  /** Rotations done. */
  rotations = 0;

  constructor(private readonly options: EventLogOptions) {
    this.maxBytes = options.maxBytes ?? 50 * 1024 * 1024;
    this.maxFiles = options.maxFiles ?? 5;
    this.maxBufferedLines = options.maxBufferedLines ?? 100_000;
    this.flushIntervalMs = options.flushIntervalMs ?? 200;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Queues one event; never throws. */
  write(event: Record<string, unknown>): void {
    if (this.buffer.length >= this.maxBufferedLines) {
      this.droppedLines += 1;
      this.bufferFullLines += 1;
      if (this.bufferFullLines === 1) {
        try {
          this.options.onBufferFull?.(this.maxBufferedLines);
        } catch {
          // A failing reporter must not break the log.
        }
      }
      return;
    }
    let line: string;
    try {
      line = JSON.stringify(event);
    } catch {
      this.droppedLines += 1;
      return;
    }
    this.buffer.push(line);
  }

  /** Writes what is buffered; resolves when it is on disk (or dropped on error). */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.flushOnce());
    return this.flushing;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }

  private async flushOnce(): Promise<void> {
    if (this.buffer.length === 0) return;
    const lines = this.buffer;
    this.buffer = [];
    try {
      // A process killed while writing leaves a partial last line: end it, so that only that line
      // is lost to readers and not the first one written now.
      let chunk = '';
      if (this.size < 0) {
        this.size = await this.currentSize();
        if (this.size > 0 && !(await this.endsWithNewline())) chunk = '\n';
      }
      let chunkBytes = Buffer.byteLength(chunk);
      for (const line of lines) {
        const bytes = Buffer.byteLength(line) + 1;
        const filled = this.size + chunkBytes;
        if (filled > 0 && filled + bytes > this.maxBytes) {
          await this.append(chunk);
          chunk = '';
          chunkBytes = 0;
          await this.rotate();
        }
        chunk += line + '\n';
        chunkBytes += bytes;
      }
      await this.append(chunk);
    } catch (err) {
      this.errors += 1;
      this.droppedLines += lines.length;
      this.size = -1;
      const e = err as NodeJS.ErrnoException;
      const kind = e.code ?? e.name;
      if (!this.reported.has(kind)) {
        this.reported.add(kind);
        try {
          this.options.onError?.(e);
        } catch {
          // A failing reporter must not break the log.
        }
      }
    }
  }

  private async append(chunk: string): Promise<void> {
    if (chunk === '') return;
    await fs.appendFile(this.options.file, chunk);
    this.size += Buffer.byteLength(chunk);
  }

  private async currentSize(): Promise<number> {
    await fs.mkdir(path.dirname(this.options.file), { recursive: true });
    try {
      return (await fs.stat(this.options.file)).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
  }

  private async endsWithNewline(): Promise<boolean> {
    const handle = await fs.open(this.options.file, 'r');
    try {
      const last = Buffer.alloc(1);
      await handle.read(last, 0, 1, this.size - 1);
      return last[0] === 0x0a;
    } finally {
      await handle.close();
    }
  }

  private async rotate(): Promise<void> {
    const { file } = this.options;
    await fs.rm(`${file}.${this.maxFiles}`, { force: true });
    for (let i = this.maxFiles - 1; i >= 1; i -= 1) {
      await fs.rename(`${file}.${i}`, `${file}.${i + 1}`).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
    }
    if (this.maxFiles >= 1) await fs.rename(file, `${file}.1`);
    else await fs.rm(file, { force: true });
    this.size = 0;
    this.rotations += 1;
  }
}
