"""neural-tangents speed records: one machine per record, never replaced, and the kernel benchmark's ratio only
against neural-tangents measured on the same host (tools/nt_oracle/host.py, benchmarks/perf)."""
import json
import pathlib

import pytest

from benchmarks.perf import test_kernel_throughput as throughput

REPO = pathlib.Path(__file__).resolve().parents[2]
ZEN, XEON = "AMD EPYC (cpu family 26, model 2)", "Intel(R) Xeon(R) Processor (cpu family 6, model 167)"


def write_record(path, cpu_model, rates):
  """A bench_nt record whose summary holds `rates` (case key -> entries/s)."""
  summary = {key: {"entries_per_s_median_over_runs": rate} for key, rate in rates.items()}
  path.write_text(json.dumps({"environment": {"cpu_model": cpu_model, "python": "3.11.7"}, "runs": [{}],
                              "summary": summary}))


def test_the_ratio_reads_only_records_of_this_host_in_their_order(tmp_path):
  write_record(tmp_path / "nt_baseline.json", XEON, {"fc": 1.0, "cnn_gap_8_depth2_best": 2.0})
  write_record(tmp_path / "nt_baseline_tier_shapes.json", ZEN, {"cnn_gap_8_depth2_best": 3.0, "fc_192_depth2": 4.0})
  write_record(tmp_path / "nt_baseline_tier_shapes_zen5.json", ZEN, {"cnn_gap_8_depth2_best": 5.0, "fc": 6.0})
  records = throughput.nt_records(ZEN, tmp_path)
  assert [path.name for path in records] == ["nt_baseline_tier_shapes.json", "nt_baseline_tier_shapes_zen5.json"]
  assert throughput.nt_entries_per_s("cnn_gap_8_depth2", records) == (3.0, "nt_baseline_tier_shapes.json")
  assert throughput.nt_entries_per_s("fc", records) == (6.0, "nt_baseline_tier_shapes_zen5.json")
  assert throughput.nt_entries_per_s("cnn_gap_32", records) == (None, None)
  assert throughput.nt_records("another CPU", tmp_path) == []


# `lscpu` on the Zen 5 host of tools/nt_oracle/nt_baseline_tier_shapes_zen5.json (fields it does not read left out)
ZEN5_LSCPU = """Architecture:                            x86_64
CPU(s):                                  2
Vendor ID:                               AuthenticAMD
Model name:                              AMD EPYC
CPU family:                              26
Model:                                   2
Thread(s) per core:                      1
Stepping:                                1
Hypervisor vendor:                       KVM
L1d cache:                               96 KiB (2 instances)
L2 cache:                                2 MiB (2 instances)
L3 cache:                                32 MiB (1 instance)
"""


def test_the_host_is_named_as_its_record_names_it():
  record = json.loads((REPO / "tools" / "nt_oracle" / "nt_baseline_tier_shapes_zen5.json").read_text())
  assert throughput.nt_host().cpu_model(ZEN5_LSCPU) == record["environment"]["cpu_model"]
  assert throughput._host_cpu_model() == throughput.nt_host().cpu_model()  # pylint: disable=protected-access


@pytest.mark.parametrize("text", [None, "not json", json.dumps({"runs": []}), json.dumps([1])])
def test_a_record_of_another_machine_or_no_record_is_refused_and_kept(tmp_path, capsys, text):
  host = throughput.nt_host()
  path = tmp_path / "record.json"
  if text is None:
    write_record(path, XEON, {"fc": 1.0})
  else:
    path.write_text(text)
  before = path.read_text()
  with pytest.raises(SystemExit) as exit_info:
    host.check_record(path, {"cpu_model": ZEN, "python": "3.11.7"})
  assert exit_info.value.code == 2
  message = capsys.readouterr().err.strip()
  assert message.startswith("error: --record=") and "\n" not in message
  assert ("cpu_model" in message) == (text is None)
  assert path.read_text() == before


def test_a_record_of_this_machine_or_a_new_file_is_accepted(tmp_path):
  host = throughput.nt_host()
  path = tmp_path / "record.json"
  host.check_record(path, {"cpu_model": ZEN})  # a new file
  write_record(path, ZEN, {"fc": 1.0})
  host.check_record(path, {"cpu_model": ZEN, "python": "3.11.7"})
