// The routes loader's checks of `sessionData` across routes: a namespace has one writer,
// its readers are routes of this file, and only routes that see a session can use one.
// They run after every route was checked on its own, so all the names are known.

import { Value } from '@sinclair/typebox/value';
import { parseByteSize } from '@sessiongate/service-kit';
import { DEFAULT_NAMESPACE_BYTES, MAX_NAMESPACE_BYTES } from '@sessiongate/session';
import type { RouteDraft } from './checks.js';
import { show } from './problems.js';
import { CredentialsSchema, RouteSchema, SessionDataSchema, isRecord } from './schema.js';
import type { Context, Segments } from './yaml-positions.js';

const NameSchema = RouteSchema.properties.name;

export function checkSessionData(ctx: Context, routes: readonly unknown[], drafts: RouteDraft[]): void {
  const byName = new Map<string, Record<string, unknown>>();
  for (const r of routes) if (isRecord(r) && Value.Check(NameSchema, r.name)) byName.set(r.name, r);
  const writers = new Map<string, number>();
  routes.forEach((route, i) => {
    if (!isRecord(route) || !isRecord(route.sessionData)) return;
    const data = route.sessionData;
    const at = (...rest: string[]): Segments => ['routes', String(i), 'sessionData', ...rest];
    const fail = (segments: Segments, message: string): void => ctx.report(segments, `${ctx.display(segments)}: ${message}`);

    if (route.auth === 'none') {
      fail(at(), 'needs a session, and a route with auth: none never looks at one; set auth: required or optional');
    } else if (Value.Check(CredentialsSchema, route.credentials) && !route.credentials.includes('cookie')) {
      fail(at(), 'needs the session cookie among the credentials: API keys and bearer JWTs carry no session to write to');
    }

    if (Value.Check(SessionDataSchema.properties.namespace, data.namespace)) {
      const first = writers.get(data.namespace);
      if (first === undefined) writers.set(data.namespace, i);
      else {
        const line = ctx.position(ctx.offsetOf(['routes', String(first), 'sessionData', 'namespace'], 'value')).line;
        fail(at('namespace'), `${show(data.namespace)} is already written by routes[${first}] (line ${line}); a namespace has one writing route`);
      }
    }

    let maxBytes = DEFAULT_NAMESPACE_BYTES;
    if (data.maxBytes !== undefined && Value.Check(SessionDataSchema.properties.maxBytes, data.maxBytes)) {
      const parsed = parseByteSize(data.maxBytes);
      if (parsed === null || parsed === 0 || parsed > MAX_NAMESPACE_BYTES) {
        fail(at('maxBytes'), `must be a positive size of at most ${MAX_NAMESPACE_BYTES} bytes ("4kb"), got ${show(data.maxBytes)}`);
      } else maxBytes = parsed;
    }
    drafts[i]!.dataMaxBytes = maxBytes;

    if (Array.isArray(data.readers)) {
      data.readers.forEach((reader, j) => {
        if (!Value.Check(NameSchema, reader)) return;
        if (reader === route.name) fail(at('readers', String(j)), 'is this route itself, which always reads its own namespace');
        else if (!byName.has(reader)) fail(at('readers', String(j)), `${show(reader)} is not the name of a route in this file`);
        else if (byName.get(reader)!.auth === 'none') fail(at('readers', String(j)), `route ${show(reader)} has auth: none and never sees a session`);
      });
    }
  });
}
