'use strict';
// The Node.js runtime interface client of `dispatcher lambda serve`: the Lambda Runtime
// API loop in plain JavaScript, shipped in the Python package, so that Node.js hooks run
// with no npm install and no native build. It follows the behaviour of the official
// client (aws-lambda-ric 3.x): handler loading (CommonJS and ES modules), the
// sync / async / callback programming models with callbackWaitsForEmptyEventLoop,
// context.done/succeed/fail, the context object, init and invocation errors in Lambda's
// shape ({errorType, errorMessage, trace}) and its log lines (node_support.js).
//
//   AWS_LAMBDA_RUNTIME_API=127.0.0.1:PORT/SECRET node node_runtime.js module.handler
//
// Everything after HOST:PORT in AWS_LAMBDA_RUNTIME_API goes in front of every Runtime
// API path: the local host answers a worker only when its secret is there.
//
// The file is valid both as CommonJS and as an ES module, because Node takes a .js
// file's module system from the nearest package.json, which may be a user's project
// around the virtualenv: so no require/exports, no import/export statements, no
// import.meta, no top-level await; built-ins come through import(), which both have.

(async () => {
  // As CommonJS (the usual case) through require, which spares starting Node's ES
  // module loader (~20 ms of a cold start); as an ES module through import().
  const commonjs = typeof require === 'function';
  const load = commonjs ? async (name) => require(name) : (name) => import(name);
  const [http, path, fs, util, url, nodeModule, stream, childProcess] = await Promise.all(
    ['http', 'path', 'fs', 'util', 'url', 'module', 'stream', 'child_process']
      .map((name) => load(`node:${name}`)));
  const { pathToFileURL } = url;
  const { createRequire } = nodeModule;
  const { Writable } = stream;
  const { spawnSync } = childProcess;

  const env = process.env;
  const EXIT_UNCAUGHT = 129;
  const EXIT_UNHANDLED_REJECTION = 128;
  const self = fs.realpathSync(process.argv[1]);
  const supportFile = path.join(path.dirname(self), 'node_support.js');
  await (commonjs ? load(supportFile) : import(pathToFileURL(supportFile).href));
  const support = globalThis[Symbol.for('dispatcher.lambda_host.node_support')]({
    path, fs, util, pathToFileURL, Writable, requireFrom: createRequire(self),
  });
  delete globalThis[Symbol.for('dispatcher.lambda_host.node_support')];
  const { STREAMING, errors, toRapidResponse, log } = support;

  // -- the Runtime API ----------------------------------------------------------------------

  const api = (() => {
    const value = env.AWS_LAMBDA_RUNTIME_API || '';
    const slash = value.indexOf('/');
    const hostPort = slash < 0 ? value : value.slice(0, slash);
    const colon = hostPort.lastIndexOf(':');
    return {
      hostname: hostPort.slice(0, colon).replace(/^\[|\]$/g, ''),
      port: Number(hostPort.slice(colon + 1)),
      prefix: (slash < 0 ? '' : value.slice(slash)) + '/2018-06-01/runtime',
    };
  })();

  // Kept-alive connections, one for `next` and one for posts (a crash report must never
  // wait behind a pending next). Node unrefs idle ones: they never keep the event loop
  // alive, which callbackWaitsForEmptyEventLoop relies on.
  const nextAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const postAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  function call(agent, method, route, body, headers) {
    return new Promise((resolve, reject) => {
      const request = http.request({ hostname: api.hostname, port: api.port, method, agent,
        path: api.prefix + route, headers }, (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => resolve({ status: response.statusCode,
          headers: response.headers, body: Buffer.concat(chunks) }));
      });
      request.on('error', reject);
      request.end(body);
    });
  }

  async function next() {
    const answer = await call(nextAgent, 'GET', '/invocation/next');
    if (answer.status !== 200) throw new Error(`Runtime API next: HTTP ${answer.status}`);
    return answer;
  }

  // Posts still on their way, for process.exit() (below).
  const inflight = new Set();

  // A post that cannot reach the Runtime API leaves the worker nothing to do: it exits,
  // and the host reports Runtime.ExitError. A refused post (a 4xx) is logged; the loop
  // goes on, as with the official client.
  async function post(route, payload, headers = {}) {
    const body = Buffer.from(payload, 'utf8');
    const entry = { route, body, headers: { 'Content-Type': 'application/json',
      'Content-Length': body.length, ...headers } };
    inflight.add(entry);
    let answer;
    try {
      answer = await call(postAgent, 'POST', route, body, entry.headers);
    } catch (err) {
      inflight.delete(entry);
      process.stderr.write(`Runtime API unreachable: ${err}\n`);
      process.exit(1);
    }
    inflight.delete(entry);
    if (answer.status !== 202) {
      console.error(`Runtime API answered ${answer.status} to ${route}: ${answer.body}`);
    }
  }

  // The official client posts results synchronously (native code), so a handler that
  // exits right after answering (say setImmediate(() => process.exit())) still delivers
  // its answer. Posts here are asynchronous, so process.exit() first sends what is still
  // in flight, synchronously, from a short-lived child process (the host takes the
  // first copy of a post that arrives and refuses a second one).
  const POST_ONCE = `let input = '';
    process.stdin.on('data', (d) => { input += d; }).on('end', () => {
      const { options, body } = JSON.parse(input);
      require('node:http').request(options, (r) => r.resume().on('end', () => process.exit(0)))
        .on('error', () => process.exit(1)).end(Buffer.from(body, 'base64'));
    });`;
  const exit = process.exit.bind(process);
  process.exit = (code) => {
    for (const { route, body, headers } of inflight) {
      const options = { hostname: api.hostname, port: api.port, method: 'POST',
        path: api.prefix + route, headers };
      spawnSync(process.execPath, ['-e', POST_ONCE], { timeout: 30_000, stdio: 'pipe',
        input: JSON.stringify({ options, body: body.toString('base64') }) });
    }
    inflight.clear();
    return exit(code);
  };

  const serialize = (value) => {
    try {
      return JSON.stringify(value === undefined ? null : value);
    } catch (_) {
      throw new Error('Unable to stringify response body');
    }
  };

  function postErrorTo(route, error) {
    const response = toRapidResponse(error);
    // A header value must be visible ASCII; Lambda's own error types all are.
    const type = /^[\x21-\x7e]+$/.test(response.errorType) ? response.errorType : 'Unhandled';
    return post(route, serialize(response), { 'Lambda-Runtime-Function-Error-Type': type });
  }

  const invocation = (id) => `/invocation/${encodeURIComponent(id)}`;
  const postResponse = (id, result) => post(`${invocation(id)}/response`, serialize(result));
  const postError = (id, error) => postErrorTo(`${invocation(id)}/error`, error);

  // -- one invocation -------------------------------------------------------------------------

  // What runs when the event loop empties (process 'beforeExit'): set per invocation.
  let onEmptyLoop = () => {};
  // Where a crash is reported: init/error until the first event, then that event's error.
  let crash = (error, code) => postErrorTo('/init/error', error).then(() => process.exit(code));

  // callback(err, result), context.done/succeed/fail: only the first call counts. With
  // callbackWaitsForEmptyEventLoop (the default), callback's result is posted once the
  // event loop is empty, as in Lambda; done/succeed/fail and async results post at once.
  function callbackContext(id, scheduleNext) {
    let waitForEmptyLoop = true;
    let reported = false;
    let called = false;
    const complete = (result) => {
      if (reported) {
        console.error('Invocation has already been reported as done. Cannot call complete ' +
          'more than once per invocation.');
        return;
      }
      reported = true;
      postResponse(id, result).then(scheduleNext);
    };
    const fail = (err) => {
      log.error('Invoke Error', err);
      postError(id, err).then(scheduleNext);
    };
    const done = (err, result) => {
      onEmptyLoop = () => {};
      if (err !== undefined && err !== null) fail(err);
      else complete(result);
    };
    const callback = (err, result) => {
      onEmptyLoop = () => {};
      if (err !== undefined && err !== null) fail(err);
      else if (!waitForEmptyLoop) complete(result);
      else onEmptyLoop = () => setImmediate(() => complete(result));
    };
    const once = (fn) => (...args) => {
      if (called) return;
      fn(...args);  // if it throws (an unserializable result), a later call may still report
      called = true;
    };
    const context = {
      get callbackWaitsForEmptyEventLoop() { return waitForEmptyLoop; },
      set callbackWaitsForEmptyEventLoop(value) { waitForEmptyLoop = value; },
      succeed: once((result) => done(null, result)),
      fail: once((err) => done(err === undefined || err === null ? 'handled' : err, null)),
      done: once(done),
    };
    return { callback: once(callback), context, markReported: () => { reported = true; } };
  }

  function parseHeader(headers, name, label) {
    const text = headers[name];
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new Error(`Cannot parse ${label} as json: ${err}`);
    }
  }

  function lambdaContext(base, headers) {
    const trace = headers['lambda-runtime-trace-id'];
    if (trace) env._X_AMZN_TRACE_ID = trace;
    else delete env._X_AMZN_TRACE_ID;
    const deadline = Number(headers['lambda-runtime-deadline-ms']);
    return Object.assign(base, {
      functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
      functionName: env.AWS_LAMBDA_FUNCTION_NAME,
      memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
      logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
      logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
      clientContext: parseHeader(headers, 'lambda-runtime-client-context', 'ClientContext'),
      identity: parseHeader(headers, 'lambda-runtime-cognito-identity', 'CognitoIdentity'),
      invokedFunctionArn: headers['lambda-runtime-invoked-function-arn'],
      awsRequestId: headers['lambda-runtime-aws-request-id'],
      tenantId: headers['lambda-runtime-aws-tenant-id'],
      getRemainingTimeInMillis: () => deadline - Date.now(),
    });
  }

  function startLoop(handler) {
    const isAsync = handler.constructor?.name === 'AsyncFunction';
    // Called as a method, as the official runtime does: stack traces read
    // `at exports.fn [as handler]`, as in Lambda.
    const user = { handler };
    const scheduleNext = () => setImmediate(() => invokeOnce().catch((err) => {
      console.log(`Unexpected Top Level Error: ${err}`);
      crash(err, EXIT_UNCAUGHT);
    }));

    function runStreaming(event, headers, id) {
      onEmptyLoop = () => {};
      support.runStreaming(user, event, lambdaContext({}, headers)).then(
        (text) => post(`${invocation(id)}/response`, text).then(scheduleNext),
        (err) => {
          log.error('Invoke Error', err);
          postError(id, err).then(scheduleNext);
        });
    }

    async function invokeOnce() {
      const { headers, body } = await next();
      const id = headers['lambda-runtime-aws-request-id'];
      log.requestId = id;
      crash = (error, code) => postError(id, error).then(() => process.exit(code));
      if (handler[STREAMING]) {
        runStreaming(JSON.parse(body), headers, id);
        return;
      }
      const { callback, context, markReported } = callbackContext(id, scheduleNext);
      // The event loop emptied and the handler never answered: an async handler left a
      // promise unsettled (an error); a callback handler forgot its callback (null).
      onEmptyLoop = () => {
        markReported();
        onEmptyLoop = () => {};
        if (isAsync) {
          const error = new errors.NodeJsExit('The event loop emptied before the ' +
            'handler\'s promise settled: most often a Promise that is never resolved.');
          log.error('Invoke Error', error);
          postError(id, error).then(scheduleNext);
        } else {
          postResponse(id, null).then(scheduleNext);
        }
      };
      try {
        const result = user.handler(JSON.parse(body), lambdaContext(context, headers), callback);
        if (result && typeof result.then === 'function') {
          result.then(context.succeed, context.fail).catch(context.fail);
        }
      } catch (err) {
        callback(err);
      }
    }

    scheduleNext();
  }

  // -- start --------------------------------------------------------------------------------

  log.patchConsole();
  process.on('uncaughtException', (error) => {
    log.error('Uncaught Exception', error);
    crash(error, EXIT_UNCAUGHT);
  });
  process.on('unhandledRejection', (reason, promise) => {
    const error = new errors.UnhandledPromiseRejection(reason);
    Object.assign(error, { reason, promise });
    log.error('Unhandled Promise Rejection', error);
    crash(error, EXIT_UNHANDLED_REJECTION);
  });
  process.on('beforeExit', () => onEmptyLoop());

  const handlerString = process.argv[2] || env._HANDLER;
  process.stdout.write(`Executing '${handlerString}' in function directory '${process.cwd()}'\n`);
  const handler = await support.loadHandler(process.cwd(), handlerString);
  if (env.AWS_LAMBDA_NODEJS_DISABLE_CALLBACK_WARNING === undefined && handler.length === 3 &&
      handler.constructor?.name !== 'AsyncFunction' && !handler[STREAMING]) {
    console.warn('This handler takes a callback. AWS Lambda\'s Node.js 24 and later ' +
      'runtimes no longer run callback-style handlers: to move there, make it an async ' +
      'function. Set AWS_LAMBDA_NODEJS_DISABLE_CALLBACK_WARNING to silence this warning.');
  }
  startLoop(handler);
})().catch((error) => {
  // Reported as an init error by the listener, once it is registered.
  if (process.listenerCount('uncaughtException') > 0) {
    process.emit('uncaughtException', error);
  } else {
    process.stderr.write(`${error?.stack ?? error}\n`);
    process.exit(1);
  }
});
