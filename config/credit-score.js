'use strict';

exports.handler = (event, context, callback) => {
  for (var key in event.Endpoints) {
    if (event.Endpoints.hasOwnProperty(key)) {
      var endpoint = event.Endpoints[key];
      var attr = endpoint.Attributes;
      if (!attr) {
        attr = {};
        endpoint.Attributes = attr;
      }
      attr["CreditScore"] = [ Math.floor(Math.random() * 200) + 650];
    }
  }
  console.log("Received event:", JSON.stringify(event, null, 2));
  callback(null, event.Endpoints);
};
