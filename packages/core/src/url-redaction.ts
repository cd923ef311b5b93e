// URLs as bullpen shows them in spans and logs: credentials in the userinfo replaced, and the
// values of query parameters that carry secrets (pre-signed URLs, access tokens) replaced by
// REDACTED, their keys kept (OpenTelemetry's HTTP conventions for url.full and url.query).

/** What a redacted part becomes, as OpenTelemetry's conventions have it. */
export const REDACTED = 'REDACTED';

/**
 * Query parameters whose values are always redacted, matched case-sensitively: OpenTelemetry's
 * list for url.full (AWS SigV2's AWSAccessKeyId and Signature, Azure SAS's sig, Google Cloud's
 * X-Goog-Signature), and AWS SigV4's X-Amz-Signature. Others are redacted when their key holds
 * one of LOG_REDACT_KEYS (X-Amz-Credential and X-Amz-Security-Token by the defaults).
 */
export const SENSITIVE_QUERY_PARAMETERS: ReadonlySet<string> = new Set(['AWSAccessKeyId', 'Signature', 'sig', 'X-Goog-Signature', 'X-Amz-Signature']);

/** A key as LOG_REDACT_KEYS compares it (logger.ts's redactionForm). */
function form(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/**
 * The query string `search` (with its `?`, or empty) with the values of sensitive parameters
 * replaced; everything else is kept byte for byte. `keyForms` are LOG_REDACT_KEYS in redactionForm.
 */
function redactQuery(search: string, keyForms: readonly string[]): string {
  if (search.length <= 1) return search;
  const pairs = search.slice(1).split('&').map((pair) => {
    const eq = pair.indexOf('=');
    if (eq < 0) return pair;
    const name = decoded(pair.slice(0, eq));
    const sensitive = SENSITIVE_QUERY_PARAMETERS.has(name) || keyForms.some((key) => form(name).includes(key));
    return sensitive ? `${pair.slice(0, eq)}=${REDACTED}` : pair;
  });
  return `?${pairs.join('&')}`;
}

/** `url` with userinfo and sensitive query values redacted; `keyForms` are LOG_REDACT_KEYS in redactionForm. */
export function redactUrlWith(url: URL, keyForms: readonly string[]): string {
  const copy = new URL(url.href);
  if (copy.username !== '' || copy.password !== '') {
    copy.username = REDACTED;
    copy.password = copy.password === '' ? '' : REDACTED;
  }
  copy.search = redactQuery(copy.search, keyForms);
  return copy.href;
}

/** `url` with its userinfo and the values of its sensitive query parameters redacted. */
export function redactUrl(url: URL | string, redactKeys: ReadonlySet<string>): string {
  return redactUrlWith(typeof url === 'string' ? new URL(url) : url, [...redactKeys].map(form).filter(Boolean));
}

/** Something shaped like an absolute URL inside free text: a scheme, `://`, then no whitespace or quotes. */
const URL_IN_TEXT = /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"'<>`]+/g;

/**
 * `text` with every URL in it redacted as redactUrl does. A URL that does not parse has what lies
 * between its `://` and its last `@` masked, and its query values the same as one that does.
 */
export function redactUrlsInText(text: string, keyForms: readonly string[]): string {
  if (!text.includes('://')) return text;
  return text.replace(URL_IN_TEXT, (found) => {
    try {
      return redactUrlWith(new URL(found), keyForms);
    } catch {
      const start = found.indexOf('://') + 3;
      const at = found.lastIndexOf('@');
      const masked = at >= start ? `${found.slice(0, start)}${REDACTED}${found.slice(at)}` : found;
      const query = masked.indexOf('?');
      return query < 0 ? masked : masked.slice(0, query) + redactQuery(masked.slice(query), keyForms);
    }
  });
}
