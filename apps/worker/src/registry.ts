// Handlers by job name. A name can be registered once: a second registration (say a HANDLERS_DIR
// file reusing a built-in name) is a startup error rather than a silent override.
import type { Handler } from './handler';

export class HandlerRegistry {
  private readonly handlers = new Map<string, { handler: Handler; source: string }>();

  /** `source` names where the handler came from, for the duplicate-name error. */
  register(handler: Handler, source = 'code'): this {
    const existing = this.handlers.get(handler.name);
    if (existing) {
      throw new Error(`handler name "${handler.name}" is registered twice: by ${existing.source} and by ${source}`);
    }
    this.handlers.set(handler.name, { handler, source });
    return this;
  }

  registerAll(handlers: Iterable<Handler>, source = 'code'): this {
    for (const handler of handlers) this.register(handler, source);
    return this;
  }

  get(name: string): Handler | undefined {
    return this.handlers.get(name)?.handler;
  }

  names(): string[] {
    return [...this.handlers.keys()].sort();
  }
}
