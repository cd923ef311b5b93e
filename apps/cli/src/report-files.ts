// The files `bullpen report` reads for the paths it is given. A lifecycle log rotates by size
// (core's EventLog: `<file>.1` the newest rotated, up to `<file>.<EVENT_LOG_MAX_FILES>` the
// oldest, never compressed), so a path stands for the file and its rotated siblings, read oldest
// first. Every file is opened before any is read, so that a rotation while reading renames
// nothing under the reader.
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { UsageError } from './config';

export interface LogFile {
  path: string;
  handle: FileHandle;
}

/** `<file>.N` beside `file`, oldest (highest N) first. */
export async function rotatedSiblings(file: string): Promise<string[]> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const names = await readdir(dir);
  return names
    .flatMap((name) => {
      const suffix = name.startsWith(`${base}.`) ? name.slice(base.length + 1) : '';
      return /^\d+$/.test(suffix) ? [{ name, n: Number(suffix) }] : [];
    })
    .sort((a, b) => b.n - a.n)
    .map(({ name }) => path.join(dir, name));
}

/** The files for `paths` (with their rotated siblings when `rotated`), each once, opened and
 * checked to be plain text. */
export async function openLogFiles(paths: readonly string[], { rotated }: { rotated: boolean }): Promise<LogFile[]> {
  const files: string[] = [];
  const seen = new Set<string>();
  for (const p of paths) {
    const info = await stat(p);
    if (info.isDirectory()) {
      const logs = (await readdir(p)).filter((n) => n.endsWith('.jsonl'));
      const hint = logs.length > 0 ? `: name a log in it, such as ${path.join(p, logs[0] as string)}` : ': name a log file';
      throw new UsageError(`report: ${p} is a directory${hint}`);
    }
    for (const file of rotated ? [...(await rotatedSiblings(p)), p] : [p]) {
      const key = path.resolve(file);
      if (seen.has(key)) continue;
      seen.add(key);
      files.push(file);
    }
  }
  const opened: LogFile[] = [];
  try {
    for (const file of files) {
      const handle = await open(file, 'r');
      opened.push({ path: file, handle });
      await refuseCompressed(file, handle);
    }
  } catch (err) {
    await Promise.all(opened.map((f) => f.handle.close().catch(() => undefined)));
    throw err;
  }
  return opened;
}

async function refuseCompressed(file: string, handle: FileHandle): Promise<void> {
  const head = Buffer.alloc(2);
  const { bytesRead } = await handle.read(head, 0, 2, 0);
  if (bytesRead === 2 && head[0] === 0x1f && head[1] === 0x8b) {
    throw new UsageError(`report: ${file} is gzip-compressed; bullpen writes its event logs as plain text: decompress it first (gunzip -k ${file})`);
  }
}
