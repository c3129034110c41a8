// Runs static/js/card.js in node against a stubbed page and a stubbed Stripe.js, plays one
// scenario (argv[3], JSON) and prints what the script did as JSON. Used by tests/test_card_js.py.
"use strict";
const fs = require("fs");
const vm = require("vm");

const script = fs.readFileSync(process.argv[2], "utf8");
const scenario = JSON.parse(process.argv[3]);
const seen = {created: [], mounted: [], confirms: [], completes: [], submitted: null, requests: [], error: ""};

function element(extra) {
  return Object.assign({hidden: false, textContent: "", dataset: {}, focus() {}, setAttribute() {}}, extra);
}
const button = element({textContent: "Pay", dataset: {busyLabel: "Processing…"}});
const hidden = {value: ""};
const listeners = {};
const form = element({
  dataset: {
    publishableKey: "pk_test", clientSecret: "seti_1_secret_2", walletAmount: "3190",
    walletLabel: "DICOM Portal Professional", currency: "usd", country: "DE"
  },
  elements: {setup_intent_id: hidden},
  querySelector() { return button; },
  addEventListener(name, fn) { listeners[name] = fn; },
  submit() { seen.submitted = hidden.value; }
});
const page = {
  "card-form": form, "card-errors": element(), "wallet": element({hidden: true}),
  "cardholder-name": element({value: "Pat Lee"})
};
const answers = scenario.confirm_results.slice();
let walletHandler = null;

const stripe = {
  elements() {
    return {create(kind, options) {
      seen.created.push({kind, hasRequest: Boolean(options && options.paymentRequest)});
      return {mount(where) { seen.mounted.push(where); }};
    }};
  },
  confirmCardSetup(secret, data, options) {
    seen.confirms.push({secret, data: data || null, options: options || null});
    return Promise.resolve(answers.shift());
  }
};
if (scenario.payment_request) {
  stripe.paymentRequest = function (options) {
    seen.requests.push(options);
    return {
      canMakePayment() { return Promise.resolve(scenario.can_make_payment); },
      on(name, fn) { if (name === "paymentmethod") walletHandler = fn; }
    };
  };
}

const context = {
  Stripe() { return stripe; },
  document: {getElementById(id) { return page[id] || null; }},
  Error, Promise, parseInt
};
vm.runInNewContext(script, context);

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));
(async () => {
  await settle();
  if (scenario.wallet_pays && walletHandler) {
    walletHandler({paymentMethod: {id: "pm_from_wallet"}, complete(status) { seen.completes.push(status); }});
    for (let i = 0; i < 5; i++) await settle();
  }
  seen.walletShown = !page.wallet.hidden;
  seen.error = page["card-errors"].textContent;
  process.stdout.write(JSON.stringify(seen));
})();
