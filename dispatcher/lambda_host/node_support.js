'use strict';
// Errors, log lines and handler loading for node_runtime.js (see there). Like it, valid
// as CommonJS and as an ES module; node_runtime.js import()s it, and it hands over its
// parts under a global symbol, since neither module system's exports work in both.

globalThis[Symbol.for('dispatcher.lambda_host.node_support')] = (node) => {
  const { path, fs, util, pathToFileURL, requireFrom, Writable } = node;
  const env = process.env;
  const STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');

  // -- errors: Lambda's shape ------------------------------------------------------------

  const runtimeError = (name) => {
    const cls = class extends Error {};
    cls.prototype.name = `Runtime.${name}`;
    return cls;
  };
  const errors = Object.fromEntries(['ImportModuleError', 'HandlerNotFound',
    'MalformedHandlerName', 'UserCodeSyntaxError', 'NodeJsExit',
    'UnhandledPromiseRejection'].map((name) => [name, runtimeError(name)]));

  const looksLikeError = (e) =>
    e && typeof e.name === 'string' && typeof e.message === 'string' &&
    typeof e.stack === 'string' && e.name && e.message && e.stack;

  // What the runtime posts for an error. Anything thrown or passed to a callback may
  // arrive: Errors keep name, message and stack lines; other values their type and text.
  function toRapidResponse(error) {
    try {
      if (util.types.isNativeError(error) || looksLikeError(error)) {
        const clean = (s) => s?.replaceAll('\x7F', '%7F');
        return {
          errorType: clean(error.name),
          errorMessage: clean(error.message),
          trace: clean(error.stack).split('\n'),
        };
      }
      return { errorType: typeof error, errorMessage: error.toString(), trace: [] };
    } catch (_) {
      return {
        errorType: 'handled',
        errorMessage: 'callback called with Error argument, but there was a problem ' +
          'while retrieving one or more of its message, name, and stack',
      };
    }
  }

  // -- logging: console.* become Lambda's log lines ----------------------------------------

  const LEVELS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
  const jsonLogs = env.AWS_LAMBDA_LOG_FORMAT?.toUpperCase() === 'JSON';
  const log = { requestId: undefined };

  const withErrorFields = (_key, value) => (value instanceof Error ? Object.assign({
    errorType: value.constructor?.name ?? 'UnknownError', errorMessage: value.message,
    stackTrace: typeof value.stack === 'string' ? value.stack.split('\n') : value.stack,
  }, value) : value);

  function jsonLine(record, params) {
    if (params.length === 1) {
      try {
        return JSON.stringify({ ...record, message: params[0] }, withErrorFields);
      } catch (_) {
        return JSON.stringify({ ...record, message: util.format(params[0]) });
      }
    }
    const error = params.find((p) => p instanceof Error);
    const fields = error ? { errorType: withErrorFields('', error).errorType,
      errorMessage: error.message, stackTrace: String(error.stack).split('\n') } : {};
    return JSON.stringify({ ...record, message: util.format(...params), ...fields });
  }

  function logLine(level, params) {
    const timestamp = new Date().toISOString();
    const line = jsonLogs
      ? jsonLine({ timestamp, level, requestId: log.requestId }, params)
      : `${timestamp}\t${log.requestId}\t${level}\t${util.format(...params)}`;
    // One record per line: CloudWatch splits on \n, Lambda's runtimes use \r inside.
    process.stdout.write(line.replace(/\n/g, '\r') + '\n');
  }

  log.patchConsole = () => {
    const floor = Math.max(0, LEVELS.indexOf(env.AWS_LAMBDA_LOG_LEVEL?.toUpperCase()));
    const method = (level) => (LEVELS.indexOf(level) >= floor
      ? (...params) => logLine(level, params) : () => {});
    Object.assign(console, { trace: method('TRACE'), debug: method('DEBUG'),
      info: method('INFO'), log: method('INFO'), warn: method('WARN'),
      error: method('ERROR'), fatal: (...params) => logLine('FATAL', params) });
  };

  // An error as the runtime logs it: `TITLE \t{"errorType":...,"stack":[...]}` in text.
  log.error = (title, error) => {
    const err = error instanceof Error ? error : new Error(error);
    if (jsonLogs) {
      console.error(err);
      return;
    }
    const fields = (_key, value) => (value instanceof Error ? Object.assign(
      { errorType: value.name, errorMessage: value.message, code: value.code }, value,
      typeof value.stack === 'string' ? { stack: value.stack.split('\n') } : {}) : value);
    let text;
    try {
      text = JSON.stringify(err, fields);
    } catch (_) {
      text = JSON.stringify(toRapidResponse(err));
    }
    console.error(title, `\t${text}`);
  };

  // -- loading the handler (Lambda's handler string: [dir/]module.nested.function) ---------

  function hasTypeModule(folder) {
    for (let dir = folder; !dir.endsWith('/node_modules'); dir = path.dirname(dir)) {
      const manifest = path.join(dir, 'package.json');
      if (fs.existsSync(manifest)) {
        try {
          return JSON.parse(fs.readFileSync(manifest, 'utf8'))?.type === 'module';
        } catch (err) {
          console.warn(`${manifest} cannot be read, it will be ignored for ES module ` +
            'detection purposes.', err);
          return false;
        }
      }
      if (dir === path.dirname(dir)) return false;
    }
    return false;
  }

  const requireIfExists = (file) => (fs.existsSync(file) ? requireFrom(file) : undefined);
  const importIfExists = async (file) =>
    (fs.existsSync(file) ? import(pathToFileURL(file).href) : undefined);

  // The official client's order: the exact name, .js as CommonJS unless its package is
  // "type": "module", then .js as an ES module, .mjs, .cjs, and last Node's own lookup.
  async function loadModule(appRoot, moduleRoot, name) {
    const file = path.resolve(appRoot, moduleRoot, name);
    const exact = requireIfExists(file);
    if (exact) return exact;
    const esm = fs.existsSync(`${file}.js`) && hasTypeModule(path.dirname(`${file}.js`));
    const loaded = (!esm && requireIfExists(`${file}.js`)) ||
      (esm && await importIfExists(`${file}.js`)) ||
      await importIfExists(`${file}.mjs`) || requireIfExists(`${file}.cjs`);
    if (loaded) return loaded;
    return requireFrom(requireFrom.resolve(name, { paths: [appRoot, moduleRoot] }));
  }

  async function loadHandler(appRoot, handlerString) {
    if (handlerString.includes('..')) {
      throw new errors.MalformedHandlerName(`'${handlerString}' is not a valid handler ` +
        'name. Use absolute paths when specifying root directories in handler names.');
    }
    const base = path.basename(handlerString);
    const moduleRoot = handlerString.slice(0, handlerString.indexOf(base));
    const match = base.match(/^([^.]*)\.(.*)$/);
    if (!match) throw new errors.MalformedHandlerName('Bad handler');
    globalThis.awslambda = {
      streamifyResponse: (fn) => Object.assign(fn, { [STREAMING]: 'response' }),
      HttpResponseStream: { from: (stream, prelude) => stream.withPrelude(prelude) },
    };
    let app;
    try {
      app = await loadModule(appRoot, moduleRoot, match[1]);
    } catch (err) {
      if (err instanceof SyntaxError) throw new errors.UserCodeSyntaxError(err);
      if (err?.code === 'MODULE_NOT_FOUND') throw new errors.ImportModuleError(err);
      throw err;
    }
    const fn = match[2].split('.').reduce((obj, key) => obj && obj[key], app);
    if (!fn) throw new errors.HandlerNotFound(`${handlerString} is undefined or not exported`);
    if (typeof fn !== 'function') {
      throw new errors.HandlerNotFound(`${handlerString} is not a function`);
    }
    return fn;
  }

  // -- response streaming (awslambda.streamifyResponse) under Invoke -------------------------

  // Lambda buffers what a streaming handler writes and returns it as Invoke's response;
  // so does this runtime (the local host has no InvokeWithResponseStream).
  async function runStreaming(user, event, context) {
    const chunks = [];
    const stream = new Writable({
      write(chunk, encoding, next) { chunks.push(Buffer.from(chunk, encoding)); next(); },
    });
    stream.setContentType = () => {};
    stream.withPrelude = (prelude) => {  // HttpResponseStream.from: JSON, then 8 NULs
      stream.write(JSON.stringify(prelude));
      stream.write(Buffer.alloc(8));
      return stream;
    };
    const result = user.handler(event, stream, context);
    if (!(result && typeof result.then === 'function')) {
      throw new Error('Streaming does not support non-async handlers.');
    }
    await result;
    if (!stream.writableEnded) throw new Error('Response stream is not finished.');
    if (!stream.writableFinished) await new Promise((resolve) => stream.once('finish', resolve));
    return Buffer.concat(chunks).toString('utf8');
  }

  return { STREAMING, errors, toRapidResponse, log, loadHandler, runStreaming };
};
