/** The body limits routes declare: bounded when the app is built, matched by method and path. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bodyLimitOf, declaredBodyLimits } from './app.ts';
import { BODY_BYTES_MAX } from './context.ts';
import { ROUTE_BODY_BYTES_MAX, type SchemeModule } from './scheme-module.ts';

const scheme = (bytesMax: number): SchemeModule => ({ name: 'toy', bodyLimits: [{ method: 'POST', path: '/things/:id/parts', bytesMax }], register() {} });

test('a declared limit applies to its method and path only; every other request keeps the default', () => {
  const limits = declaredBodyLimits([scheme(200_000)]);
  assert.equal(bodyLimitOf(limits, 'POST', '/v1/toy/things/abc/parts'), 200_000);
  assert.equal(bodyLimitOf(limits, 'PUT', '/v1/toy/things/abc/parts'), BODY_BYTES_MAX);
  assert.equal(bodyLimitOf(limits, 'POST', '/v1/toy/things//parts'), BODY_BYTES_MAX, 'an empty parameter is not a match');
  assert.equal(bodyLimitOf(limits, 'POST', '/v1/toy/things/abc/parts/more'), BODY_BYTES_MAX);
  assert.equal(bodyLimitOf(limits, 'POST', '/v1/other/things/abc/parts'), BODY_BYTES_MAX, 'under its own scheme only');
});

test('a limit past ROUTE_BODY_BYTES_MAX, zero, negative or fractional is refused when the app is built', () => {
  assert.equal(declaredBodyLimits([scheme(ROUTE_BODY_BYTES_MAX)])[0]?.bytesMax, ROUTE_BODY_BYTES_MAX);
  for (const bad of [ROUTE_BODY_BYTES_MAX + 1, 0, -1, 1.5, Number.NaN]) {
    assert.throws(() => declaredBodyLimits([scheme(bad)]), RangeError, String(bad));
  }
});
