/* The portal's JSON API reference: Swagger UI from the swagger-ui-bundle package, on our own OpenAPI. */
(function () {
  'use strict';
  var host = document.getElementById('swagger-ui');
  window.SwaggerUIBundle({
    url: host.dataset.spec,
    domNode: host,
    deepLinking: true,
    docExpansion: 'none',
    defaultModelsExpandDepth: 0,
    // "Try it out" sends the page's session cookie; unsafe methods need the CSRF header, as every page does
    requestInterceptor: function (request) {
      var match = document.cookie.match(/(?:^|; )cb_csrf=([^;]*)/);
      if (match && request.method && request.method !== 'GET') request.headers['X-CSRF-Token'] = decodeURIComponent(match[1]);
      return request;
    }
  });
})();
