'use strict';

// The campaign's hook, as deployed to Lambda (Node.js): drop bronze-tier customers,
// give everyone else the offer of their tier.
const OFFERS = { gold: '20% off everything', silver: '10% off shoes' };

exports.handler = async (event) => {
  const kept = {};
  for (const [id, endpoint] of Object.entries(event.Endpoints)) {
    const tier = ((endpoint.Attributes || {}).Tier || [])[0];
    if (!OFFERS[tier]) continue;
    endpoint.Attributes.Offer = [OFFERS[tier]];
    kept[id] = endpoint;
  }
  return kept;
};
