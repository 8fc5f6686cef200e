#!/usr/bin/env bash
# What a user writes instead of an operator: for each request, create an actor token with
# curl and store its sign-in URL in a Secret with kubectl. `make bench` times it over the
# same number of requests as the operator's burst.
#
# stdin: one request a line: NAMESPACE NAME USER_ID ACTOR_SUB
# env:   CLERK_API_URL (…/v1), CLERK_SECRET_KEY, KUBECONFIG, KUBECTL (default kubectl)
set -euo pipefail
kubectl=${KUBECTL:-kubectl}

while read -r namespace name user actor; do
  answer=$(curl -sS --fail-with-body -X POST "$CLERK_API_URL/actor_tokens" \
    -H "Authorization: Bearer $CLERK_SECRET_KEY" -H 'Content-Type: application/json' \
    -d "{\"user_id\":\"$user\",\"actor\":{\"sub\":\"$actor\"},\"expires_in_seconds\":3600}")
  url=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' <<<"$answer")
  [[ -n $url ]] || { echo "no url in Clerk's answer for $namespace/$name" >&2; exit 1; }
  # The URL goes through stdin, not the command line, where any user could read it.
  printf '%s' "$url" |
    "$kubectl" create secret generic "$name" -n "$namespace" --from-file=url=/dev/stdin >/dev/null
done
