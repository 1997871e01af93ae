// The waiting page listens for news of its push, call or text (Server-Sent Events from
// /adfs/ls/login/wait) instead of reloading itself. Without JavaScript the page's own
// button does the same by hand.
(function () {
  "use strict";
  function start() {
    var form = document.getElementById("poll-form");
    var url = form && form.getAttribute("data-events");
    var button = document.getElementById("continue");
    if (!url || !button || !window.EventSource) { return; }
    var left = document.getElementById("remaining");
    var source = new EventSource(url);
    var done = false;
    // Only the number in the live region changes: no reload, so keyboard focus and a
    // screen reader's place stay where the user left them.
    source.addEventListener("progress", function (e) {
      if (left && /^[0-9]+$/.test(e.data)) { left.textContent = e.data; }
    });
    // Answered, refused or timed out: press the page's own button, so the server moves
    // the sign-in on exactly as it does for someone without JavaScript.
    source.addEventListener("state", function () {
      if (done) { return; }
      done = true;
      source.close();
      if (form.requestSubmit) { form.requestSubmit(button); } else { button.click(); }
    });
    // The same sign-in is listened to in another tab now: leave it to that one.
    source.addEventListener("replaced", function () { source.close(); });
    // A refusal (too many waiting pages open) closes the source for good and the button
    // still works; a dropped connection is retried by the browser itself.
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
