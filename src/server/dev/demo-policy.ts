/**
 * The policy of `jitctl server --dev`, written for the demo users (users.ts): alice and bob ask,
 * lee approves, ada audits. It shows the three shapes of role a newcomer meets: one that needs a
 * lead's approval and fresh MFA (and may be extended, or taken in an emergency and reviewed
 * afterwards), one approved at once, and one with a longer window.
 */
export const DEMO_POLICY = `# jitctl server --dev: demo policy (docs/policy.md in the jitctl package explains every key)
roles:
  prod-deploy:
    description: Deploy to production
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 15m
    max_duration: 1h
    pending_ttl: 1h
    require_reason: true
    step_up: { acr: mfa, max_age: 5m }
    # jitctl extend: up to 2h more in all, reviewed by a lead like the request
    extend: { max_total: 2h, require_reason: true }
    # jitctl request prod-deploy --break-glass --reason "…": at once, a lead reviews it afterwards
    break_glass: { review_within: 24h, max_per_week: 2 }
    credential:
      audience: https://k8s.prod.example.com
      env:
        KUBE_TOKEN: "{{token}}"

  db-read:
    description: Read-only access to the production database (approved at once, audited)
    requesters: [group:developers, group:leads]
    approvers: [group:leads]
    approvals: 0
    default_duration: 30m
    max_duration: 2h
    pending_ttl: 15m
    require_reason: false
    credential:
      audience: https://db.prod.example.com
      env:
        PGPASSWORD: "{{token}}"

  staging-admin:
    description: Administer the staging cluster
    requesters: [group:developers]
    approvers: [group:leads]
    approvals: 1
    default_duration: 1h
    max_duration: 4h
    pending_ttl: 2h
    require_reason: false
    credential:
      audience: https://k8s.staging.example.com
      env:
        KUBE_TOKEN: "{{token}}"
`;
