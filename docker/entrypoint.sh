#!/bin/sh
# Selects the app: api | worker | exporter | cli (anything else runs as a command).
set -e
app="${1:-api}"
case "$app" in
  api|worker|exporter)
    shift || true
    exec node "/app/apps/$app/dist/main.js" "$@" ;;
  cli|bullpen)
    shift || true
    exec node /app/apps/cli/dist/main.js "$@" ;;
  *)
    exec "$@" ;;
esac
