// The lines of a JSON-lines file of jobs, numbered as an editor numbers them: blank lines are
// skipped (but counted), a UTF-8 byte order mark at the start is not part of the first line, and
// each line is checked to be JSON but kept as written, so that what is sent is exactly what the
// file says (JSON.parse then JSON.stringify would turn 12345678901234567890 into 12345678901234567000).
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';

export type JobLine =
  | { line: number; text: string; value: unknown }
  | { line: number; error: string };

export async function* readJobLines(file: string): AsyncGenerator<JobLine> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const raw of lines) {
    n += 1;
    const text = (n === 1 && raw.startsWith('\uFEFF') ? raw.slice(1) : raw).trim();
    if (text === '') continue;
    try {
      yield { line: n, text, value: JSON.parse(text) as unknown };
    } catch (err) {
      yield { line: n, error: `not JSON: ${(err as Error).message}` };
    }
  }
}
