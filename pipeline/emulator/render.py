"""Render emulator records as GitHub REST JSON objects.

Key sets and key order follow the newest recorded GitHub responses (2025, see
``/work/shared/github-replay``): ``Issue.setUp`` for repositories and issues,
``PullRequest.testGetIssueTimeline`` for timeline events. API URLs point at the emulator
(``base``) so that clients following ``url`` fields stay on it; ``html_url`` fields point at
github.com as on GitHub.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

from pipeline.emulator.data import BOT, Dataset, Event, IssueRecord, RepoInfo, iso, sha1, user_id

HTML = "https://github.com"


def node_id(kind: str, ident: int | str) -> str:
    """GitHub's legacy global node id: base64 of ``"<len>:<Type><id>"``."""
    raw = f"{len(kind):02d}:{kind}{ident}" if len(kind) < 10 else f"{len(kind):03d}:{kind}{ident}"
    return base64.b64encode(raw.encode()).decode()


def user(base: str, login: str) -> dict[str, Any]:
    uid = user_id(login)
    u = f"{base}/users/{login}"
    return {
        "login": login, "id": uid, "node_id": node_id("User", uid),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4", "gravatar_id": "",
        "url": u, "html_url": f"{HTML}/apps/{login.removesuffix('[bot]')}" if login == BOT else f"{HTML}/{login}",
        "followers_url": f"{u}/followers", "following_url": f"{u}/following{{/other_user}}",
        "gists_url": f"{u}/gists{{/gist_id}}", "starred_url": f"{u}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{u}/subscriptions", "organizations_url": f"{u}/orgs",
        "repos_url": f"{u}/repos", "events_url": f"{u}/events{{/privacy}}",
        "received_events_url": f"{u}/received_events",
        "type": "Bot" if login.endswith("[bot]") else "User", "user_view_type": "public", "site_admin": False,
    }


def _org(base: str, login: str) -> dict[str, Any]:
    o = user(base, login)
    o["type"] = "Organization"
    o["node_id"] = node_id("Organization", o["id"])
    return o


def label(base: str, repo: RepoInfo, name: str) -> dict[str, Any]:
    lid = user_id(f"{repo.full_name}#label#{name}")
    return {
        "id": lid, "node_id": node_id("Label", lid),
        "url": f"{base}/repos/{repo.full_name}/labels/{quote(name, safe=':')}", "name": name,
        "color": repo.label_colors.get(name, "ededed"), "default": name in ("bug", "question", "enhancement"),
        "description": None,
    }


def repository(base: str, ds: Dataset, repo: RepoInfo, full: bool = True) -> dict[str, Any]:
    """The repository object; ``full=False`` is the shape embedded in other objects."""
    api = f"{base}/repos/{repo.full_name}"
    html = f"{HTML}/{repo.full_name}"
    recs = ds.issues.get(repo.full_name, {})
    open_count = sum(1 for x in recs.values() if x.state == "open")
    updated = max([repo.created_at] + [x.updated_at for x in recs.values()])
    lic = {"key": "other", "name": "Other", "spdx_id": "NOASSERTION", "url": None, "node_id": "MDc6TGljZW5zZTA="}
    if repo.full_name == "onnx/tensorflow-onnx":
        lic = {"key": "apache-2.0", "name": "Apache License 2.0", "spdx_id": "Apache-2.0",
               "url": "https://api.github.com/licenses/apache-2.0", "node_id": "MDc6TGljZW5zZTI="}
    out: dict[str, Any] = {
        "id": repo.id, "node_id": node_id("Repository", repo.id), "name": repo.name,
        "full_name": repo.full_name, "private": False, "owner": _org(base, repo.owner),
        "html_url": html, "description": repo.description, "fork": False, "url": api,
        "forks_url": f"{api}/forks", "keys_url": f"{api}/keys{{/key_id}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}", "teams_url": f"{api}/teams",
        "hooks_url": f"{api}/hooks", "issue_events_url": f"{api}/issues/events{{/number}}",
        "events_url": f"{api}/events", "assignees_url": f"{api}/assignees{{/user}}",
        "branches_url": f"{api}/branches{{/branch}}", "tags_url": f"{api}/tags",
        "blobs_url": f"{api}/git/blobs{{/sha}}", "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}", "trees_url": f"{api}/git/trees{{/sha}}",
        "statuses_url": f"{api}/statuses/{{sha}}", "languages_url": f"{api}/languages",
        "stargazers_url": f"{api}/stargazers", "contributors_url": f"{api}/contributors",
        "subscribers_url": f"{api}/subscribers", "subscription_url": f"{api}/subscription",
        "commits_url": f"{api}/commits{{/sha}}", "git_commits_url": f"{api}/git/commits{{/sha}}",
        "comments_url": f"{api}/comments{{/number}}", "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "contents_url": f"{api}/contents/{{+path}}", "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "merges_url": f"{api}/merges", "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "downloads_url": f"{api}/downloads", "issues_url": f"{api}/issues{{/number}}",
        "pulls_url": f"{api}/pulls{{/number}}", "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "labels_url": f"{api}/labels{{/name}}", "releases_url": f"{api}/releases{{/id}}",
        "deployments_url": f"{api}/deployments", "created_at": iso(repo.created_at),
        "updated_at": iso(updated), "pushed_at": iso(updated), "git_url": f"git://github.com/{repo.full_name}.git",
        "ssh_url": f"git@github.com:{repo.full_name}.git", "clone_url": f"{html}.git", "svn_url": html,
        "homepage": "", "size": 1_000_000 + repo.id % 1000, "stargazers_count": 80_000 if repo.id % 2 else 2_300,
        "watchers_count": 80_000 if repo.id % 2 else 2_300, "language": repo.language, "has_issues": True,
        "has_projects": True, "has_downloads": True, "has_wiki": True, "has_pages": False,
        "has_discussions": False, "forks_count": 20_000, "mirror_url": None, "archived": False,
        "disabled": False, "open_issues_count": open_count, "license": lic, "allow_forking": True,
        "is_template": False, "web_commit_signoff_required": False, "topics": ["onnx", "deep-learning"],
        "visibility": "public", "forks": 20_000, "open_issues": open_count,
        "watchers": 80_000 if repo.id % 2 else 2_300, "default_branch": "main",
        "permissions": {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True},
    }
    if full:
        out["custom_properties"] = {}
        out["organization"] = _org(base, repo.owner)
        out["network_count"] = 20_000
        out["subscribers_count"] = 1_500
    return out


def _reactions(url: str, n: int = 0) -> dict[str, Any]:
    return {"url": f"{url}/reactions", "total_count": n, "+1": n, "-1": 0, "laugh": 0, "hooray": 0,
            "confused": 0, "heart": 0, "rocket": 0, "eyes": 0}


def issue(base: str, ds: Dataset, rec: IssueRecord, single: bool = False,
          with_repository: bool = False) -> dict[str, Any]:
    """An issue (or a pull request seen through the issues API).

    ``single=True`` adds ``closed_by`` (GitHub sends it only on ``GET .../issues/{number}``);
    ``with_repository=True`` adds ``repository`` (as in a cross-referenced event's source).
    """
    repo = ds.repos[rec.repo]
    api = f"{base}/repos/{rec.repo}/issues/{rec.number}"
    kind = "pull" if rec.is_pr else "issues"
    asg = user(base, rec.assignee) if rec.assignee else None
    out: dict[str, Any] = {
        "url": api, "repository_url": f"{base}/repos/{rec.repo}", "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments", "events_url": f"{api}/events",
        "html_url": f"{HTML}/{rec.repo}/{kind}/{rec.number}", "id": rec.id,
        "node_id": node_id("PullRequest" if rec.is_pr else "Issue", rec.id), "number": rec.number,
        "title": rec.title, "user": user(base, rec.author),
        "labels": [label(base, repo, x) for x in rec.labels], "state": rec.state, "locked": False,
        "assignee": asg, "assignees": [asg] if asg else [], "milestone": None, "comments": rec.comments,
        "created_at": iso(rec.created_at), "updated_at": iso(rec.updated_at),
        "closed_at": iso(rec.closed_at) if rec.closed_at else None,
        "author_association": rec.author_association, "type": None, "active_lock_reason": None,
        "sub_issues_summary": {"total": 0, "completed": 0, "percent_completed": 0},
        "issue_dependencies_summary": {"blocked_by": 0, "total_blocked_by": 0, "blocking": 0, "total_blocking": 0},
    }
    if rec.is_pr:
        out["draft"] = False
    if with_repository:
        out["repository"] = repository(base, ds, repo, full=False)
    if rec.is_pr:
        pr = f"{HTML}/{rec.repo}/pull/{rec.number}"
        out["pull_request"] = {
            "url": f"{base}/repos/{rec.repo}/pulls/{rec.number}", "html_url": pr,
            "diff_url": f"{pr}.diff", "patch_url": f"{pr}.patch",
            "merged_at": iso(rec.merged_at) if rec.merged_at else None,
        }
    out["body"] = rec.body
    if single:
        out["closed_by"] = user(base, rec.closed_by) if rec.closed_by else None
    out["reactions"] = _reactions(api, rec.number % 3)
    out["timeline_url"] = f"{api}/timeline"
    out["performed_via_github_app"] = None
    out["state_reason"] = rec.state_reason
    return out


def comment(base: str, rec: IssueRecord, ev: Event) -> dict[str, Any]:
    """An issue comment as served by ``GET .../issues/{number}/comments`` (the timeline's
    ``commented`` entry is this plus ``event`` and ``actor``)."""
    cid = ev.id
    kind = "pull" if rec.is_pr else "issues"
    url = f"{base}/repos/{rec.repo}/issues/comments/{cid}"
    return {
        "url": url, "html_url": f"{HTML}/{rec.repo}/{kind}/{rec.number}#issuecomment-{cid}",
        "issue_url": f"{base}/repos/{rec.repo}/issues/{rec.number}", "id": cid,
        "node_id": node_id("IssueComment", cid), "user": user(base, ev.actor),
        "created_at": iso(ev.at), "updated_at": iso(ev.at),
        "author_association": ev.data.get("association", "NONE"), "body": ev.data.get("body", ""),
        "reactions": _reactions(url), "performed_via_github_app": None,
    }


_EVENT_NODE_TYPES = {
    "closed": "ClosedEvent", "referenced": "ReferencedEvent", "labeled": "LabeledEvent",
    "unlabeled": "UnlabeledEvent", "subscribed": "SubscribedEvent", "mentioned": "MentionedEvent",
    "assigned": "AssignedEvent", "connected": "ConnectedEvent", "merged": "MergedEvent",
}


def timeline_event(base: str, ds: Dataset, rec: IssueRecord, ev: Event) -> dict[str, Any]:
    """One timeline entry, with the key set GitHub uses for its event type."""
    if ev.kind == "commented":
        out = comment(base, rec, ev)
        out["event"] = "commented"
        out["actor"] = user(base, ev.actor)
        return out
    if ev.kind == "cross-referenced":
        src_repo, src_num = ev.data["source"]
        src = ds.get(src_repo, src_num) or ds.foreign[(src_repo, src_num)]
        return {"actor": user(base, ev.actor), "created_at": iso(ev.at), "updated_at": iso(ev.at),
                "source": {"type": "issue", "issue": issue(base, ds, src, with_repository=True)},
                "event": "cross-referenced"}
    if ev.kind == "committed":
        sha = ev.data["sha"]
        api = f"{base}/repos/{rec.repo}/git/commits/{sha}"
        who = {"name": ev.actor, "email": f"{ev.actor}@users.noreply.github.com", "date": iso(ev.at)}
        parent = sha1(sha, "parent")
        return {
            "sha": sha, "node_id": node_id("Commit", f"{ds.repos[rec.repo].id}:{sha}"), "url": api,
            "html_url": f"{HTML}/{rec.repo}/commit/{sha}", "author": who, "committer": dict(who),
            "tree": {"sha": sha1(sha, "tree"), "url": f"{base}/repos/{rec.repo}/git/trees/{sha1(sha, 'tree')}"},
            "message": ev.data.get("message", ""),
            "parents": [{"sha": parent, "url": f"{base}/repos/{rec.repo}/git/commits/{parent}",
                         "html_url": f"{HTML}/{rec.repo}/commit/{parent}"}],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                             "verified_at": None},
            "event": "committed",
        }
    commit = ev.data.get("commit_id")
    commit_repo = rec.repo
    out = {
        "id": ev.id, "node_id": node_id(_EVENT_NODE_TYPES.get(ev.kind, "IssueEvent"), ev.id),
        "url": f"{base}/repos/{rec.repo}/issues/events/{ev.id}", "actor": user(base, ev.actor),
        "event": ev.kind, "commit_id": commit,
        "commit_url": f"{base}/repos/{commit_repo}/commits/{commit}" if commit else None,
        "created_at": iso(ev.at),
    }
    if ev.kind == "closed":
        out["state_reason"] = ev.data.get("state_reason")
    if ev.kind in ("labeled", "unlabeled"):
        name = ev.data["label"]
        out["label"] = {"name": name, "color": ds.repos[rec.repo].label_colors.get(name, "ededed")}
    if ev.kind == "assigned":
        out["assignee"] = user(base, ev.data["assignee"])
    out["performed_via_github_app"] = None
    return out
