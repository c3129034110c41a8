// The card form (Stripe.js Card Element + confirmCardSetup) and the 3-D Secure page
// (confirmCardPayment). Loaded after Stripe.js; no inline scripts anywhere (the CSP forbids them).
// The card number is typed into Stripe's element and goes to Stripe only: our server receives the
// id of the SetupIntent Stripe confirmed, or the id of our own payment, and re-reads the rest.
(function () {
  "use strict";

  var GENERIC_ERROR = "We could not check your card. Please look at the details and try again.";
  var NO_STRIPE = "The secure card form could not load. Check your connection and reload the page.";

  function setBusy(button, busy) {
    if (!button.dataset.idleLabel) button.dataset.idleLabel = button.textContent;
    button.disabled = busy;
    button.setAttribute("aria-busy", busy ? "true" : "false");
    button.textContent = busy ? button.dataset.busyLabel : button.dataset.idleLabel;
  }

  // Stripe's errors carry a message for the customer; anything else (a script error) does not.
  function messageOf(error) {
    return error && !(error instanceof Error) && error.message ? error.message : GENERIC_ERROR;
  }

  function loadStripe(form, region) {
    if (typeof Stripe !== "function") {
      region.textContent = NO_STRIPE;
      form.querySelector("button[type=submit]").disabled = true;
      return null;
    }
    return Stripe(form.dataset.publishableKey);
  }

  // Apple Pay / Google Pay, only where Stripe.js offers it (real Stripe.js; localstripe's has no
  // paymentRequest) and canMakePayment() finds a wallet. The wallet's card goes the typed card's
  // way: the same SetupIntent confirmed by Stripe.js, then the same POST of its id (done). The
  // wallet's sheet is closed (complete) before any 3-D Secure dialog, as Stripe's guide does it.
  function offerWallet(stripe, elements, form, start, done) {
    if (typeof stripe.paymentRequest !== "function") return;
    var request = stripe.paymentRequest({
      country: form.dataset.country, currency: form.dataset.currency,
      total: {label: form.dataset.walletLabel, amount: parseInt(form.dataset.walletAmount, 10) || 0}
    });
    request.canMakePayment().then(function (result) {
      if (!result) return;
      elements.create("paymentRequestButton", {paymentRequest: request}).mount("#wallet-button");
      document.getElementById("wallet").hidden = false;
    }, function () { /* no wallet here: the card form alone */ });
    request.on("paymentmethod", function (event) {
      if (!start()) { event.complete("fail"); return; }
      var secret = form.dataset.clientSecret;
      var failed = function (error) { event.complete("fail"); done({error: error}); };
      stripe.confirmCardSetup(secret, {payment_method: event.paymentMethod.id}, {handleActions: false})
        .then(function (result) {
          if (result.error) { failed(result.error); return; }
          event.complete("success");
          if (result.setupIntent.status !== "requires_action") { done(result); return; }
          stripe.confirmCardSetup(secret).then(done, function (error) { done({error: error}); });
        }, failed);
    });
  }

  function setUpCardForm(form) {
    var region = document.getElementById("card-errors");
    var button = form.querySelector("button[type=submit]");
    var stripe = loadStripe(form, region);
    if (!stripe) return;
    var elements = stripe.elements();
    var card = elements.create("card");
    card.mount("#card-element");
    var busy = false;

    function done(result) {
      if (result.error) {
        busy = false;
        setBusy(button, false);
        region.textContent = messageOf(result.error);
        region.focus();
        return;
      }
      form.elements.setup_intent_id.value = result.setupIntent.id;
      form.submit(); // a plain POST with the CSRF token and the SetupIntent id, nothing else
    }

    // One confirmation at a time, typed card or wallet (the server, not this flag, makes sure
    // there is only one charge).
    function start() {
      if (busy) return false;
      busy = true;
      setBusy(button, true);
      region.textContent = "";
      return true;
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!start()) return;
      var name = document.getElementById("cardholder-name").value;
      stripe.confirmCardSetup(form.dataset.clientSecret, {
        payment_method: {card: card, billing_details: {name: name}}
      }).then(done, function (error) { done({error: error}); });
    });
    offerWallet(stripe, elements, form, start, done);
    if (region.textContent.trim()) region.focus();
  }

  function setUpAuthentication(form) {
    var region = document.getElementById("authenticate-status");
    var button = form.querySelector("button[type=submit]");
    var stripe = loadStripe(form, region);
    if (!stripe) return;
    var busy = false;

    function authenticate() {
      if (busy) return;
      busy = true;
      setBusy(button, true);
      region.textContent = "Waiting for your bank…";
      // Whatever the dialog says, the server asks Stripe what happened and shows the outcome.
      var report = function () { form.submit(); };
      stripe.confirmCardPayment(form.dataset.clientSecret).then(report, report);
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      authenticate();
    });
    if (form.dataset.autostart === "true") authenticate();
  }

  var cardForm = document.getElementById("card-form");
  if (cardForm) setUpCardForm(cardForm);
  var authenticateForm = document.getElementById("authenticate-form");
  if (authenticateForm) setUpAuthentication(authenticateForm);
})();
