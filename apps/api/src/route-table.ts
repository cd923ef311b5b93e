// The API's routes as one layer per path on the app's router, each method's handler running its
// own middleware. Express matches a request against every layer in turn and dispatches each
// middleware of a route through its router (a nested router adds a second traversal, with its
// prefix trimmed and restored and the URL parsed again). Running a route's middleware in one
// handler instead took 4–5% off the API's CPU per single submission (about 11–19 µs), against the
// nested router. One layer per path also lets the path answer the methods it does not support.
import type { Express, IRoute, NextFunction, Request, RequestHandler, Response } from 'express';

/** A route's path parameters, as Express matched them. */
type Params = Record<string, string>;

export interface RouteTable {
  get<P extends Params>(path: string, ...handlers: Array<RequestHandler<P>>): void;
  post<P extends Params>(path: string, ...handlers: Array<RequestHandler<P>>): void;
  delete<P extends Params>(path: string, ...handlers: Array<RequestHandler<P>>): void;
  /**
   * Closes the table: on each of its paths, a method that none of the path's routes handles runs
   * the shared handlers (authentication), then `other`, given the methods the path handles (with
   * HEAD beside GET, which Express serves with it). No route may be added afterwards.
   */
  otherMethods(other: (allowed: readonly string[]) => RequestHandler): void;
}

/**
 * Runs `handlers` in order as Express would run them as a route's stack: `next()` moves on (past
 * the last, the request leaves the route for the app's next layer), `next(err)`, a throw or a
 * rejected promise goes to the error handlers, and `next('route')` or `next('router')` is passed out.
 */
export function chain<P extends Params>(handlers: ReadonlyArray<RequestHandler<P>>): RequestHandler {
  if (handlers.length === 0) throw new TypeError('chain: at least one handler is required');
  return (request: Request, res: Response, done: NextFunction) => {
    // The route's path gave the params their names when Express matched it.
    const req = request as Request<P>;
    let index = 0;
    const next: NextFunction = (err?: unknown) => {
      if (err) {
        done(err);
        return;
      }
      const handler = handlers[index++];
      if (!handler) {
        // Not on to the route's next handler: that would be another method's answer (otherMethods).
        done('route');
        return;
      }
      try {
        const returned: unknown = handler(req, res, next);
        if (isThenable(returned)) returned.then(undefined, (error: unknown) => done(error || new Error('Rejected promise')));
      } catch (error) {
        done(error);
      }
    };
    next();
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as PromiseLike<unknown>).then === 'function';
}

type Method = 'get' | 'post' | 'delete';

/** Registers every route under `prefix` on `app`, each behind `shared` (e.g. authentication). */
export function routeTable(app: Express, prefix: string, shared: readonly RequestHandler[]): RouteTable {
  // One Express route per path, in the order the paths were first registered.
  const paths = new Map<string, { route: IRoute; methods: string[] }>();
  let closed = false;
  function add<P extends Params>(method: Method, path: string, handlers: ReadonlyArray<RequestHandler<P>>): void {
    if (closed) throw new Error(`routeTable: ${method.toUpperCase()} ${prefix}${path} added after otherMethods()`);
    let entry = paths.get(path);
    if (!entry) {
      entry = { route: app.route(prefix + path), methods: [] };
      paths.set(path, entry);
    }
    entry.route[method](chain([...shared, ...handlers]));
    entry.methods.push(...(method === 'get' ? ['GET', 'HEAD'] : [method.toUpperCase()]));
  }
  return {
    get: (path, ...handlers) => add('get', path, handlers),
    post: (path, ...handlers) => add('post', path, handlers),
    delete: (path, ...handlers) => add('delete', path, handlers),
    otherMethods: (other) => {
      closed = true;
      for (const { route, methods } of paths.values()) route.all(chain([...shared, other(methods)]));
    },
  };
}
