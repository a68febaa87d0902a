"""Slurm: submit a job file as a batch job, watch it, survive its time limit (docs/slurm.md).

``pympc slurm submit JOB`` renders ``slurm/pympc.sbatch`` (:mod:`.render`) with the
options of :mod:`.options` (command line, then the job file's ``[slurm]`` table), keeps the
script and the resolved job in the run directory and submits it (:mod:`.submit`);
``status``, ``cancel`` and ``logs`` (:mod:`.status`, :mod:`.command`) read Slurm
(:mod:`.query`) and the run directory together. Nothing here starts MPI: it runs on a
login node. Inside the job the batch script runs ``pympc run`` on every rank, passes the
time-limit warning on, and requeues an interrupted run (exit 75).
"""
