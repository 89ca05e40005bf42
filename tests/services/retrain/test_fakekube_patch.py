"""The fakes' patch semantics, checked against the behaviour the Kubernetes documentation specifies.

Cases come from "Update API Objects in Place Using kubectl patch" (kubernetes.io, tasks/manage-kubernetes-objects)
and the strategic-merge-patch design doc (community/contributors/devel/sig-api-machinery): containers, env and
volumes merge by their ``name`` key, a ``null`` value deletes a map key, ``$patch: delete`` removes a keyed list
element, a list without a merge key is replaced whole, and JSON merge patch (RFC 7386) replaces lists.
"""

from __future__ import annotations

import pytest

from tests.services.retrain.fakekube import merge_patch, strategic_merge

DEPLOYMENT = {
    "metadata": {"labels": {"app": "demo", "tier": "web"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {"name": "patch-demo-ctr", "image": "nginx", "env": [{"name": "A", "value": "1"}]},
                ],
                "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}],
            }
        },
    },
}


def _containers(obj):  # type: ignore[no-untyped-def]
    return obj["spec"]["template"]["spec"]["containers"]


def test_docs_example_a_new_container_is_merged_into_the_list_by_name() -> None:
    # kubectl patch deployment patch-demo --patch '{"spec": {"template": {"spec": {"containers":
    #   [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}}'  → both containers are present.
    patched = strategic_merge(
        DEPLOYMENT,
        {"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}},
    )
    assert [c["name"] for c in _containers(patched)] == ["patch-demo-ctr", "patch-demo-ctr-2"]
    assert _containers(patched)[0]["image"] == "nginx"


def test_docs_example_a_list_without_a_merge_key_is_replaced() -> None:
    # The tolerations example: a strategic merge patch of tolerations replaces the list (no patch strategy).
    patched = strategic_merge(
        DEPLOYMENT,
        {
            "spec": {
                "template": {
                    "spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}
                }
            }
        },
    )
    assert patched["spec"]["template"]["spec"]["tolerations"] == [
        {"effect": "NoSchedule", "key": "disktype", "value": "ssd"}
    ]


def test_a_keyed_element_is_merged_field_by_field_and_nested_keyed_lists_too() -> None:
    patched = strategic_merge(
        DEPLOYMENT,
        {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "patch-demo-ctr",
                                "image": "nginx:1.27",
                                "env": [{"name": "B", "value": "2"}],
                            }
                        ]
                    }
                }
            }
        },
    )
    (ctr,) = _containers(patched)
    assert ctr["image"] == "nginx:1.27"
    assert ctr["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]


def test_patch_delete_directive_and_null_values() -> None:
    patched = strategic_merge(
        DEPLOYMENT,
        {
            "metadata": {"labels": {"tier": None}},
            "spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr", "$patch": "delete"}]}}},
        },
    )
    assert patched["metadata"]["labels"] == {"app": "demo"}
    assert _containers(patched) == []


def test_patching_never_mutates_the_stored_object() -> None:
    before = repr(DEPLOYMENT)
    strategic_merge(DEPLOYMENT, {"spec": {"replicas": 5}})
    merge_patch(DEPLOYMENT, {"spec": {"replicas": 5}})
    assert repr(DEPLOYMENT) == before


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [  # RFC 7386 appendix A examples
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ],
)
def test_json_merge_patch_follows_rfc_7386(target, patch, expected) -> None:  # type: ignore[no-untyped-def]
    assert merge_patch(target, patch) == expected
