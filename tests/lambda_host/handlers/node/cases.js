'use strict';
// Node.js handlers for test_node_runtime.py: one per behaviour of the official runtime
// client (aws-lambda-ric) that the shipped runtime must reproduce.

class MyError extends Error {
  constructor(message) {
    super(message);
    this.name = 'MyError';
    this.code = 'E42';
  }
}

exports.asyncValue = async (event) => ({ ok: true, event });
exports.syncReturnIgnored = (event, context) => ({ ignored: true });
exports.callbackValue = (event, context, callback) => callback(null, { via: 'callback' });
exports.callbackTypeError = (event, context, callback) => callback(new TypeError('cb type'));
exports.callbackString = (event, context, callback) => callback('plain string error');
exports.callbackObject = (event, context, callback) => callback({ some: 'object' });
exports.throwSync = () => {
  throw new RangeError('sync range');
};
exports.throwCustom = async () => {
  throw new MyError('custom');
};
exports.rejectString = async () => {
  throw 'rejected string';
};
exports.rejectUndefined = () => Promise.reject(undefined);
exports.succeed = (event, context) => context.succeed({ s: 1 });
exports.fail = (event, context) => context.fail(new Error('ctx fail'));
exports.failEmpty = (event, context) => context.fail();
exports.done = (event, context) => context.done(null, 'done-value');
exports.doneError = (event, context) => context.done('done-error');
exports.callbackTwice = (event, context, callback) => {
  callback(null, 1);
  callback(null, 2);
};
// The result is posted when the event loop is empty: after the timer, which changes it.
exports.callbackWaits = (event, context, callback) => {
  const result = { timer: 'pending' };
  setTimeout(() => { result.timer = 'ran'; }, 100);
  callback(null, result);
};
// ...unless callbackWaitsForEmptyEventLoop is false: then at once (the timer still runs).
exports.callbackNoWait = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = false;
  const result = { timer: 'pending' };
  setTimeout(() => { result.timer = 'ran'; }, 100);
  callback(null, result);
};
exports.callbackNever = (event, context, callback) => {};
exports.asyncNever = async () => new Promise(() => {});
exports.circular = async () => {
  const a = {};
  a.a = a;
  return a;
};
exports.undefinedResult = async () => undefined;
exports.context = async (event, context) => ({
  keys: Object.keys(context).sort(),
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  memoryLimitInMB: context.memoryLimitInMB,
  logGroupName: context.logGroupName,
  logStreamName: context.logStreamName,
  identity: context.identity,
  clientContext: context.clientContext,
  invokedFunctionArn: context.invokedFunctionArn,
  awsRequestId: context.awsRequestId,
  remainingMs: context.getRemainingTimeInMillis(),
  waits: context.callbackWaitsForEmptyEventLoop,
  traceId: process.env._X_AMZN_TRACE_ID,
  streamify: typeof awslambda.streamifyResponse,
});
exports.unhandledRejection = (event, context, callback) => {
  Promise.reject(new Error('floating'));
  setTimeout(() => callback(null, 'late'), 100);
};
exports.uncaughtInTimer = () => {
  setTimeout(() => {
    throw new Error('timer boom');
  }, 10);
};
exports.deleteChar = async () => {
  throw new Error('bad\x7Fchar');
};
exports.nested = { deeper: { fn: async () => 'nested-ok' } };
exports.notAFunction = 5;
exports.streamed = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('hello ');
  responseStream.write('world');
  responseStream.end();
});
// Starts a child and an orphan (its parent shell has exited): both stay in the worker's
// process group. With event.exit the worker then exits.
exports.spawn = async (event) => {
  const { spawn, spawnSync } = require('node:child_process');
  const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
  const shell = 'sleep 1000 >/dev/null 2>&1 & echo $!';
  const orphan = Number(spawnSync('sh', ['-c', shell], { encoding: 'utf8' }).stdout);
  if (event.exit) process.exit(3);
  return { pid: process.pid, child: child.pid, orphan };
};
