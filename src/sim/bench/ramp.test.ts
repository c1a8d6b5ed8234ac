/** The statistics and settings of a ramp: the sample standard deviation, the least-squares line, the environment's overrides. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fitLine, meanSd, rampSettings } from './ramp.ts';

test('meanSd and fitLine: the sample standard deviation and the least-squares line', () => {
  const m = meanSd([2, 4, 4, 4, 5, 5, 7, 9]);
  assert.equal(m.mean, 5);
  assert.ok(Math.abs(m.sd - Math.sqrt(32 / 7)) < 1e-12);
  assert.equal(meanSd([3]).sd, 0);
  const line = fitLine([[1, 3], [2, 5], [3, 7]]);
  assert.deepEqual([line.slope, line.intercept, line.r2], [2, 1, 1]);
  assert.throws(() => fitLine([[1, 1], [1, 2]]), RangeError);
  assert.throws(() => meanSd([]), RangeError);
});

test('rampSettings: repetitions, counts and the figure from the environment, under the prefix given', () => {
  const base = { reps: 2, counts: [1, 2], svgPath: 'x.svg', other: 'kept' };
  assert.deepEqual(rampSettings('P', base, {}), base);
  assert.deepEqual(rampSettings('P', base, { P_REPS: '7', P_COUNTS: '3, 9', P_SVG: 'none', Q_REPS: '5' }), { reps: 7, counts: [3, 9], svgPath: undefined, other: 'kept' });
  assert.equal(rampSettings('P', base, { P_SVG: '/tmp/y.svg' }).svgPath, '/tmp/y.svg');
  for (const bad of ['0', '1001', '1.5', 'many']) assert.throws(() => rampSettings('P', base, { P_REPS: bad }), RangeError);
});
