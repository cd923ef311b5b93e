// Runs the built `bullpen` CLI (apps/cli/dist/main.js, `npm run build` first) as a child process,
// as an operator does.
import { spawn } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export const CLI = path.resolve(__dirname, '../../apps/cli/dist/main.js');

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function bullpen(args: string[], env: Record<string, string>, options: { stdin?: string } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.stdin ?? '');
  });
}

export interface StandInRequest {
  method: string;
  url: string;
  body: string;
}

export interface StandIn {
  /** http://127.0.0.1:<port> */
  url: string;
  /** Every request received, in order, with its body. */
  requests: StandInRequest[];
  close(): Promise<void>;
}

/**
 * A stand-in for the API (or a proxy in front of it): `answer` writes the response to each
 * request once its body has been read.
 */
export async function startStandIn(answer: (req: StandInRequest, res: http.ServerResponse) => void): Promise<StandIn> {
  const requests: StandInRequest[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') };
      requests.push(request);
      answer(request, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
