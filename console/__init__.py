"""The manager console (管理后台): server-rendered pages under /console/ in the same aiohttp app.

Pages call the same `handlers/` use-cases with the same Actor as /api/v1; the session is the
API's own bearer token kept in an HttpOnly cookie (see `console.session`)."""
