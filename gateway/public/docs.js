// Renders /openapi.json with Swagger UI (served from the swagger-ui-dist package, no CDN).
window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#docs', deepLinking: true, tryItOutEnabled: false });
