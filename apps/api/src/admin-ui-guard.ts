// What the admin UI's answers carry, and which of its requests it takes. A browser holding the UI's
// Basic credentials sends them with any request to it, one another site makes included: an HTML
// form can POST text/plain or form-encoded bodies across sites without asking, and a script can
// POST with no body at all. bull-board's own page sends JSON (axios), and its body-less actions as
// PUT or PATCH, which no other site can send without a CORS preflight that bullpen never grants.
import type { RequestHandler } from 'express';
import { ProblemError, sendProblem } from './problem';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Methods an HTML form, or a cross-site fetch without a preflight, can send. */
const SIMPLE_METHODS = new Set(['POST']);

function hasBody(headers: { 'content-length'?: string; 'transfer-encoding'?: string }): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function isJson(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() === 'application/json';
}

/** Why a request that changes something is refused, or undefined when it is the UI's own. */
export function crossSiteRefusal(req: {
  method: string;
  headers: { host?: string; origin?: string; 'sec-fetch-site'?: string | string[]; 'content-type'?: string; 'content-length'?: string; 'transfer-encoding'?: string };
}): string | undefined {
  if (SAFE_METHODS.has(req.method)) return undefined;
  const site = req.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return `Sec-Fetch-Site is ${String(site)}, not same-origin`;
  const origin = req.headers.origin;
  if (origin !== undefined) {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {
      host = undefined;
    }
    if (!host || host !== req.headers.host) return `Origin ${origin} is not this server's`;
  }
  if ((hasBody(req.headers) || SIMPLE_METHODS.has(req.method)) && !isJson(req.headers['content-type'])) {
    return `Content-Type is ${req.headers['content-type'] ?? 'missing'}, not application/json`;
  }
  return undefined;
}

/**
 * Refuses a state-changing request that is not a same-origin JSON request with 403
 * cross_site_request, and marks every answer: never framed, never cached.
 */
export function adminUiGuard(): RequestHandler {
  return (req, res, next) => {
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Content-Security-Policy', "frame-ancestors 'none'");
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    const refusal = crossSiteRefusal(req);
    if (!refusal) return next();
    sendProblem(res, new ProblemError('cross_site_request', `The admin UI only takes changes from its own page, as JSON: ${refusal}.`));
  };
}
