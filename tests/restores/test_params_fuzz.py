"""Whatever the query and form parameters of the restore pages hold, no page answers 5xx;
the ones we know break naive parsing answer 400 with a message saying what is wanted."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from hypothesis import strategies as st

from appliances.file_names import path_param
from appliances.models import ApplianceState
from portal.models import Role
from tests import factories as f
from tests.agent.hostile_names import HOSTILE
from tests.support.agent_store import backed_up_disk
from tests.support.param_fuzz import NUMBERISH, TEXT, assert_never_5xx, params_of
from tests.support.signin import force_login_verified

PATHS = st.one_of(
    st.sampled_from([path_param(p) for p in HOSTILE] + ["/odd", "/", "~", "~L2JhZP8", "/.."]),
    TEXT,
)


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory):
    return backed_up_disk(tmp_path_factory.mktemp("fuzz"), [("ext4", HOSTILE)], "odd01", "C")


@pytest.fixture
def world(db, odd_store):
    store, p = odd_store
    appliance = f.ApplianceFactory(transport="local", local_store=str(store),
                                   state=ApplianceState.ONLINE)  # fmt: skip
    server = f.ProtectedServerFactory(appliance=appliance, name="odd01")
    point = f.RecoveryPointFactory(server=server, agent_id=p["id"], volume="C",
                                   taken_at=dt.datetime.fromisoformat(p["taken_at"]))  # fmt: skip
    grant = f.RestoreGrantFactory(server=server)
    return {"point": point, "server": server, "user": grant.user,
            "admin": f.UserFactory(role=Role.CUSTOMER_ADMIN, customer=appliance.customer),
            "tech": f.UserFactory(role=Role.TECHNICIAN)}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "query", "says"),
    [
        ("restore_browse", {"partition": "²"}, "partition must be a whole number"),
        ("restore_browse", {"partition": "1e3"}, "partition must be a whole number"),
        ("restore_browse", {"partition": "9999"}, "partition must be between 0 and 128"),
        ("restore_search", {"q": "x", "partition": "٣"}, "partition must be a whole number"),
        ("restore_server_points", {"tier": "hourly"}, "tier must be one of"),
        ("restore_server_points", {"page": "²"}, "page must be a whole number"),
        ("restore_server_points", {"page": "0"}, "page must be between 1"),
    ],
)
def test_parameters_naive_code_crashed_on_are_a_400_with_a_message(client, world, name, query,
                                                                   says):  # fmt: skip
    force_login_verified(client, world["user"])
    arg = world["server"].pk if name == "restore_server_points" else world["point"].pk
    response = client.get(reverse(name, args=[arg]), query)
    assert response.status_code == 400
    assert says in response.content.decode()


def test_restore_audit_page_number_is_strict(client, world):
    force_login_verified(client, world["admin"])
    response = client.get(reverse("restore_audit"), {"page": "²"})
    assert response.status_code == 400
    assert "page must be a whole number" in response.content.decode()
    assert client.get(reverse("restore_audit"), {"page": "999"}).status_code == 200  # the last


def test_customer_pages_never_answer_5xx(client, world):
    force_login_verified(client, world["user"])
    point = world["point"].pk
    browse = reverse("restore_browse", args=[point])
    search = reverse("restore_search", args=[point])
    points = reverse("restore_server_points", args=[world["server"].pk])
    assert_never_5xx(lambda q: client.get(browse, q),
                     params_of(path=PATHS, partition=NUMBERISH), examples=30)  # fmt: skip
    assert_never_5xx(lambda q: client.get(search, q),
                     params_of(q=TEXT, partition=NUMBERISH), examples=30)  # fmt: skip
    assert_never_5xx(lambda q: client.get(points, q), params_of(tier=TEXT, page=NUMBERISH))
    selected = reverse("restore_selected", args=[point])
    assert_never_5xx(
        lambda q: client.post(selected, q),
        params_of(paths=st.lists(PATHS, max_size=3), partition=NUMBERISH),
        examples=30,
    )
    assert_never_5xx(lambda token: client.get(f"/restore/download/{token}/"),
                     st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:-_.~%", min_size=1,
                             max_size=80))  # fmt: skip


def test_staff_pages_never_answer_5xx(client, world):
    force_login_verified(client, world["tech"])
    point = world["point"].pk
    put_back = reverse("restore_put_back", args=[point])
    assert_never_5xx(
        lambda q: client.post(put_back, q),
        params_of(paths=st.lists(PATHS, max_size=3), folder=PATHS, overwrite=TEXT,
                  partition=NUMBERISH),
    )  # fmt: skip
    volume = reverse("restore_volume", args=[point])
    assert_never_5xx(
        lambda q: client.post(volume, q),
        params_of(**{"export": TEXT, "export-format": TEXT, "export-deliver": TEXT,
                     "export-folder": PATHS, "baremetal": TEXT, "bm-target": TEXT,
                     "bm-port": NUMBERISH, "bm-host_key": TEXT, "bm-device": TEXT}),
    )  # fmt: skip
    vm_start = reverse("vm_start", args=[point])
    assert_never_5xx(lambda q: client.post(vm_start, q), params_of(net=TEXT), examples=20)
    assert_never_5xx(lambda q: client.get(reverse("vm_list"), q), params_of(page=NUMBERISH))
    assert_never_5xx(lambda q: client.get(reverse("restore_audit"), q), params_of(page=NUMBERISH))


def test_grants_form_never_answers_5xx(client, world):
    force_login_verified(client, world["admin"])
    url = reverse("restore_grants", args=[world["user"].pk])
    assert_never_5xx(lambda q: client.post(url, q),
                     params_of(servers=st.lists(NUMBERISH, max_size=3)))  # fmt: skip


def test_ids_past_the_databases_integers_are_404(client, world):
    force_login_verified(client, world["tech"])
    huge = 2**70
    for name in ("restore_browse", "restore_search", "restore_volume", "vm_start"):
        assert client.get(reverse(name, args=[huge])).status_code == 404, name
    assert client.get(reverse("restore_server_points", args=[huge])).status_code == 404
    assert client.get(reverse("restore_job", args=[huge])).status_code == 404
    force_login_verified(client, world["admin"])
    assert client.get(reverse("restore_grants", args=[huge])).status_code == 404
