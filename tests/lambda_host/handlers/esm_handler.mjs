// An ES module handler (esm_handler.mjs:handler).
export const handler = async (event) => ({
  esm: true,
  endpoints: Object.keys(event.Endpoints).length,
});
