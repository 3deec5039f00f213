await Promise.reject(new Error('tla failure'));
export const handler = async () => 1;
