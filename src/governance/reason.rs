//! The reasons a request is refused, waits or is discarded for governance, as named in its
//! conditions and events. Each names what a person can do about it in the message beside it.

/// No `spec.requester`: made before this version or without the admission policies.
pub const REQUESTER_UNKNOWN: &str = "RequesterUnknown";
/// The requester may not `use` the instance (RBAC).
pub const USE_FORBIDDEN: &str = "UseForbidden";
/// A ClusterClerkInstance's `namespaceSelector` leaves the request's namespace out.
pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
/// The instance's `users` lists keep this Clerk user out of reach.
pub const USER_NOT_ALLOWED: &str = "UserNotAllowed";
/// The instance's `actorBindings` don't bind this actor to this requester.
pub const ACTOR_NOT_ALLOWED: &str = "ActorNotAllowed";
/// The instance requires approval and none is given yet.
pub const AWAITING_APPROVAL: &str = "AwaitingApproval";
/// An approver said no.
pub const DENIED: &str = "Denied";
/// A decision that can't stand was taken away (event reason).
pub const DECISION_DISCARDED: &str = "DecisionDiscarded";
/// A request was approved (event reason).
pub const APPROVED: &str = "Approved";
