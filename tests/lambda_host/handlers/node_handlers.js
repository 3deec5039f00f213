'use strict';
// Node.js test handlers (node_handlers.js:NAME), run by aws-lambda-ric in worker processes.

exports.asyncContext = async (event, context) => ({
  event,
  awsRequestId: context.awsRequestId,
  functionName: context.functionName,
  functionVersion: context.functionVersion,
  invokedFunctionArn: context.invokedFunctionArn,
  memoryLimitInMB: context.memoryLimitInMB,
  logGroupName: context.logGroupName,
  remainingMs: context.getRemainingTimeInMillis(),
  pid: process.pid,
});

exports.throwAsync = async (event) => {
  throw new Error('async boom ' + event.why);
};

exports.callbackError = (event, context, callback) => {
  callback(new TypeError('callback boom'));
};

exports.throwSync = (event, context, callback) => {
  throw new RangeError('sync boom');
};

exports.crash = async (event) => {
  if (event.crash) {
    process.exit(7);
  }
  return { pid: process.pid };
};

exports.spin = async (event) => {
  await new Promise((resolve) => setTimeout(resolve, event.ms));
  return { pid: process.pid };
};

exports.exitAfterReturn = async () => {
  // Runs after the runtime has posted the result and before it asks for the next event:
  // the worker exits between two invocations.
  setImmediate(() => process.exit(0));
  return { pid: process.pid };
};
