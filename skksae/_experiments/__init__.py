"""The experiments behind ``python -m skksae``: the features table (logistic
regression on raw pixels and on frozen features), the fine-tuning table (deep
networks from random weights and from pretrained stacks) and their figures.

:mod:`.cli` is the command line (``argparse`` and ``main``); :mod:`.options` what a
run is and its checks; :mod:`.models` builds every model the experiments train;
:mod:`.selection` chooses on a validation split; :mod:`.features_table` and
:mod:`.finetune_table` run the tables; :mod:`.report` writes them; :mod:`.figures`
draws them; :mod:`.progress` shows where a run is.  The library never imports this
package.
"""
